"""Weight-level laws of imc-sim (no aihwkit model; :class:`FamilyNoiseModel` adapts them): the
paper's Gaussian weight noise, and the ideal device. Both act on normalised weights u directly
(no device pair) and do not drift.

- Gaussian: u_prog = u + sigma_w z, z standard normal, with sigma_w = sigma (in the units of the
  weights themselves; the profile then maps weights without scaling) or, with ``relative``,
  sigma * max |u| of the tile (the max over the last two dimensions, [out, in] of a tile or of
  each tile of a stack [..., out, in]; over the whole tensor when it is 1-D).
- Ideal: u_prog = u.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import Tensor

from imc_sim.devices.adapter import FamilyNoiseModel
from imc_sim.devices.family import DeviceFamily
from imc_sim.devices.schema import Flag, Num
from imc_sim.errors import ImcSimError

if TYPE_CHECKING:
    from imc_sim.devices.profile import DeviceProfile


class Ideal(DeviceFamily):
    """No programming noise, no drift, no read noise: the programmed weights are the targets."""

    model = "ideal"
    schema = {"conductance": {}, "programming": {}, "drift": {}, "read_noise": {}}
    weight_level = True
    drifts = False
    drift_noise = False

    @classmethod
    def from_profile(cls, profile: DeviceProfile) -> Ideal:
        return cls()

    def program(self, g_target: Tensor, z: Tensor) -> Tensor:
        return g_target.clone()

    def aihwkit_model(self) -> FamilyNoiseModel:
        return FamilyNoiseModel(self)


@dataclass(frozen=True)
class GaussianParams:
    sigma: float  # std, in weight units (relative: times max |u| of the tile)
    relative: bool


class Gaussian(Ideal):
    """The paper's Gaussian weight noise (module docstring)."""

    model = "gaussian"
    schema = {
        "conductance": {},
        "programming": {"sigma": Num(None, 0.0, 10.0), "relative": Flag(False)},
        "drift": {},
        "read_noise": {},
    }

    def __init__(self, params: GaussianParams):
        self.params = params

    @classmethod
    def from_profile(cls, profile: DeviceProfile) -> Gaussian:
        return cls(GaussianParams(profile.programming["sigma"], profile.programming["relative"]))

    @classmethod
    def check_profile(cls, profile: DeviceProfile) -> None:
        if not profile.programming["relative"] and profile.periphery.weight_scaling != "none":
            raise ImcSimError(
                f"profile {profile.path}: field programming.relative = false (sigma in weight units) "
                "needs periphery.weight_scaling: none, so that tile weights are the model's weights"
            )

    def program(self, g_target: Tensor, z: Tensor) -> Tensor:
        sigma = self.params.sigma
        if self.params.relative:
            dims = tuple(range(max(g_target.ndim - 2, 0), g_target.ndim))
            return g_target + sigma * g_target.abs().amax(dim=dims, keepdim=True) * z
        return g_target + sigma * z
