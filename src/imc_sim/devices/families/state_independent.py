"""State-independent drift: aihwkit 1.1.0's ``StateIndependentNoiseModel``.

Conductances in uS, times in s; x = g_target / g_max, z standard normals:

- programming: g_prog = max(0, g_target + scale_p * (c0 + c1 x + c2 x^2 + ...) * z) (the
  coefficients in uS, no reference rescaling);
- drift coefficient, once per device: nu = scale_d * |nu_mean + nu_std z|;
- drift and accumulated read noise at t (tau = t + t0): g_d = g_prog (tau / t0)^(-nu) for t > 0,
  g_t = max(0, g_d + scale_r * |g_d / g_max| * sqrt(ln((tau + t_read) / (2 t_read))) * z)
  (aihwkit's read law: scale_r carries the unit, uS). The read term is there at t = 0 too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aihwkit.inference.noise.custom import StateIndependentNoiseModel
from torch import Tensor

from imc_sim.devices.families.pcm import one_over_f, power_law_drift
from imc_sim.devices.family import DeviceFamily, polynomial
from imc_sim.devices.schema import SCALE, T0, T_READ, Num, Nums

if TYPE_CHECKING:
    from imc_sim.devices.profile import DeviceProfile


@dataclass(frozen=True)
class StateIndependentParams:
    g_max: float  # uS
    coeffs: tuple[float, ...]  # uS, programming-noise polynomial in g / g_max
    prog_scale: float
    nu_mean: float
    nu_std: float
    drift_scale: float
    t0: float  # s
    t_read: float  # s
    read_scale: float


class StateIndependent(DeviceFamily):
    """The law of the module docstring (aihwkit ``StateIndependentNoiseModel``)."""

    model = "state-independent"
    schema = {
        "conductance": {"g_max": Num(25.0, 0.0, 1e4, open_lo=True)},
        "programming": {"coeffs": Nums([0.2, 0.0, 0.0]), "scale": SCALE},
        "drift": {"nu_mean": Num(0.1, 0.0, 1.0), "nu_std": Num(0.05, 0.0, 1.0), "t0": T0,
                  "scale": SCALE},
        "read_noise": {"t_read": T_READ, "scale": SCALE},
    }

    def __init__(self, params: StateIndependentParams):
        self.params = params
        self.g_max = params.g_max

    @classmethod
    def from_profile(cls, profile: DeviceProfile) -> StateIndependent:
        prog, drift, read = profile.programming, profile.drift, profile.read_noise
        return cls(StateIndependentParams(
            g_max=profile.conductance["g_max"], coeffs=tuple(prog["coeffs"]), prog_scale=prog["scale"],
            nu_mean=drift["nu_mean"], nu_std=drift["nu_std"], drift_scale=drift["scale"],
            t0=drift["t0"], t_read=read["t_read"], read_scale=read["scale"],
        ))

    def program(self, g_target: Tensor, z: Tensor) -> Tensor:
        p = self.params
        sigma = polynomial(p.coeffs, g_target / p.g_max)
        return (g_target + p.prog_scale * sigma * z).clamp_(min=0.0)

    def drift_coefficients(self, g_target: Tensor, z: Tensor) -> Tensor:
        p = self.params
        return (p.nu_mean + p.nu_std * z).abs_().mul_(p.drift_scale)

    def drift(self, g_prog: Tensor, coeffs: Tensor | None, t: float, z: Tensor | None) -> Tensor:
        p = self.params
        g_d = power_law_drift(g_prog, coeffs, t, p.t0)
        sigma = p.read_scale * one_over_f(t, p.t0, p.t_read)
        return (g_d + (g_d / p.g_max).abs() * sigma * z).clamp_(min=0.0)

    def aihwkit_model(self) -> StateIndependentNoiseModel:
        p = self.params
        return StateIndependentNoiseModel(
            g_max=p.g_max, prog_coeff=list(p.coeffs), prog_noise_scale=p.prog_scale,
            drift_nu_mean=p.nu_mean, drift_nu_std=p.nu_std, drift_scale=p.drift_scale, t_0=p.t0,
            read_noise_scale=p.read_scale, t_read=p.t_read,
        )
