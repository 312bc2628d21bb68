"""Resistive RAM: aihwkit 1.1.0's ``ReRamWan2022NoiseModel`` (Wan et al., Nature 608, 504 (2022)).

The spread of the conductance around its target, fitted at 1 s, 1 d and 2 d only, with
x = g_target / g_max and z standard normals (conductances in uS):

    g = max(0, g_target + scale * sigma_t(x) * g_max / 40 uS * z),
    sigma_t(x) = c0 + c1 x + ... + c4 x^4   (uS at the fit's 40 uS; may be negative: a sign of z)

Programming draws at t = 1 s; the "drift coefficients" are the targets themselves, and the state
at each time t is an independent draw around the target (the fit has no trajectory: a chip's 1 d
state is not its drifted 1 s state). Other times are refused.

Read noise: the fit has none (aihwkit: "No separate data is available for read noise (1/f)"; Wan
et al. publish no read-noise figure the fit uses). ``read_noise.per_read`` is a per-read weight
noise of constant std in normalised weight units, fresh at every MVM, as aihwkit's docstring
advises ("about 1 %": ``forward.w_noise`` = 0.01, ``ADDITIVE_CONSTANT``): var = per_read^2.

aihwkit quirk (tests/test_aihwkit_quirks.py): the model stores its 40 uS reference under a name it
never reads, so the uS fit is not rescaled when g_max differs; :meth:`ReRAM.aihwkit_model` sets
the reference it does read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aihwkit.inference.noise.reram import ReRamWan2022NoiseModel
from torch import Tensor

from imc_sim.devices.family import DeviceFamily, ReadNoise, polynomial
from imc_sim.devices.schema import SCALE, Num
from imc_sim.errors import ImcSimError
from imc_sim.units import format_time

if TYPE_CHECKING:
    from imc_sim.devices.profile import DeviceProfile

WAN2022_G_REF = 40.0  # uS, the conductance scale of the polynomial fit
# time (s) -> c0..c4 (uS), aihwkit's ``coeff_dic`` (listed there highest power first)
WAN2022_COEFFS: dict[float, tuple[float, ...]] = {
    1.0: (0.348, 16.030, -43.853, 45.393, -16.815),
    86400.0: (0.701, 22.086, -50.773, 47.095, -16.458),
    172800.0: (0.782, 20.274, -43.507, 37.062, -11.934),
}


@dataclass(frozen=True)
class ReRAMParams:
    g_max: float  # uS
    scale: float  # multiplies the fitted spread
    per_read: float = 0.0  # std of the per-read weight noise, normalised weight units


class ReRAM(DeviceFamily):
    """The law of the module docstring (aihwkit ``ReRamWan2022NoiseModel``)."""

    model = "reram-wan2022"
    schema = {
        "conductance": {"g_max": Num(40.0, 0.0, 1e4, open_lo=True)},
        "programming": {"scale": SCALE},
        "drift": {},
        "read_noise": {"per_read": Num(0.0, 0.0, 1.0)},
    }
    allowed_times = tuple(WAN2022_COEFFS)

    def __init__(self, params: ReRAMParams):
        self.params = params
        self.g_max = params.g_max

    @classmethod
    def from_profile(cls, profile: DeviceProfile) -> ReRAM:
        return cls(ReRAMParams(g_max=profile.conductance["g_max"], scale=profile.programming["scale"],
                               per_read=profile.read_noise["per_read"]))

    def _draw(self, g_target: Tensor, t: float, z: Tensor) -> Tensor:
        p = self.params
        sigma = polynomial(WAN2022_COEFFS[t], g_target / p.g_max) * (p.g_max / WAN2022_G_REF)
        return (g_target + p.scale * sigma * z).clamp_(min=0.0)

    def program(self, g_target: Tensor, z: Tensor) -> Tensor:
        return self._draw(g_target, min(WAN2022_COEFFS), z)

    def drift_coefficients(self, g_target: Tensor, z: Tensor) -> Tensor:
        """The targets themselves (not a copy): each time's draw is around them."""
        return g_target

    def drift(self, g_prog: Tensor, coeffs: Tensor | None, t: float, z: Tensor | None) -> Tensor:
        if t not in WAN2022_COEFFS:
            times = ", ".join(format_time(s) for s in WAN2022_COEFFS)
            raise ImcSimError(f"{self.model} is only characterised at {times}; got {format_time(t)}")
        return self._draw(coeffs, t, z)

    def read_noise(self) -> ReadNoise | None:
        """per_read^2 for every weight (None when per_read is 0)."""
        per_read = self.params.per_read
        return None if per_read == 0 else ReadNoise(c0=per_read**2)

    def aihwkit_model(self) -> ReRamWan2022NoiseModel:
        model = ReRamWan2022NoiseModel(g_max=self.params.g_max, noise_scale=self.params.scale)
        model.coeff_g_max_reference = WAN2022_G_REF
        return model
