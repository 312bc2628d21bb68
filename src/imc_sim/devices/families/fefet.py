"""Multi-domain FeFET: imc-sim's own law (no aihwkit model; :class:`FamilyNoiseModel` adapts it).

Conductances in uS, times in s, z standard normals, span = g_max - g_min:

- programming: a device switches the fraction p = clip((g_target - g_min) / span, 0, 1) of its
  ``n_domains`` ferroelectric domains, so
  g_prog = clip(g_target + scale_p (span sqrt(p (1 - p) / n_domains) + sigma_floor) z, g_min, g_max);
- drift coefficient (retention rate), once per device:
  r = relax_per_decade * scale_d * max(0, 1 + relax_spread z);
- drift at t: the device loses the fraction L = min(1, r log10(1 + t / t0)) of its distance to
  g_relax: g_t = clip(g_relax + (g_prog - g_relax)(1 - L), g_min, g_max) (no noise; L = 0 at t = 0);
- read (cycle-to-cycle) noise: relative Gaussian, sigma = relative * g for each device of a pair,
  fresh at every MVM (:meth:`FeFET.read_variance`); the drifted state carries none of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from imc_sim.devices.adapter import FamilyNoiseModel
from imc_sim.devices.family import DeviceFamily, ReadNoise
from imc_sim.devices.schema import G_MAX, SCALE, Num

if TYPE_CHECKING:
    from imc_sim.devices.profile import DeviceProfile


@dataclass(frozen=True)
class FeFETParams:
    g_max: float  # uS
    g_min: float  # uS
    n_domains: int
    sigma_floor: float  # uS, program-verify residual
    prog_scale: float
    t0: float  # s
    relax_per_decade: float  # fraction of (g - g_relax) lost per decade of time
    relax_spread: float  # relative device-to-device spread of that rate
    g_relax: float  # uS, the state devices relax towards
    drift_scale: float
    read_relative: float  # read-noise std relative to g


class FeFET(DeviceFamily):
    """The law of the module docstring."""

    model = "fefet"
    schema = {
        "conductance": {"g_max": G_MAX, "g_min": Num(0.0, 0.0, 1e4)},
        "programming": {"n_domains": Num(None, 1.0, 1e6, integer=True),
                        "sigma_floor": Num(0.0, 0.0, 1e3), "scale": SCALE},
        "drift": {"t0": Num(1.0, 0.0, 1e6, open_lo=True), "relax_per_decade": Num(None, 0.0, 1.0),
                  "relax_spread": Num(0.0, 0.0, 1.0), "g_relax": Num(None, 0.0, 1e4, optional=True),
                  "scale": SCALE},
        "read_noise": {"relative": Num(0.0, 0.0, 1.0)},
    }
    drift_noise = False

    def __init__(self, params: FeFETParams):
        self.params = params
        self.g_max, self.g_min = params.g_max, params.g_min

    @classmethod
    def from_profile(cls, profile: DeviceProfile) -> FeFET:
        cond, prog, drift = profile.conductance, profile.programming, profile.drift
        g_relax = drift["g_relax"]
        return cls(FeFETParams(
            g_max=cond["g_max"], g_min=cond["g_min"], n_domains=prog["n_domains"],
            sigma_floor=prog["sigma_floor"], prog_scale=prog["scale"], t0=drift["t0"],
            relax_per_decade=drift["relax_per_decade"], relax_spread=drift["relax_spread"],
            g_relax=(cond["g_max"] + cond["g_min"]) / 2 if g_relax is None else g_relax,
            drift_scale=drift["scale"], read_relative=profile.read_noise["relative"],
        ))

    def programming_sigma(self, g_target: Tensor) -> Tensor:
        """sigma_prog(g_target) in uS (the binomial domain law plus the floor)."""
        p = self.params
        span = p.g_max - p.g_min
        frac = ((g_target - p.g_min) / span).clamp(0.0, 1.0)
        return p.prog_scale * (span * torch.sqrt(frac * (1 - frac) / p.n_domains) + p.sigma_floor)

    def program(self, g_target: Tensor, z: Tensor) -> Tensor:
        g = g_target + self.programming_sigma(g_target) * z
        return g.clamp_(self.g_min, self.g_max)

    def drift_coefficients(self, g_target: Tensor, z: Tensor) -> Tensor:
        p = self.params
        return (1 + p.relax_spread * z).clamp_(min=0.0).mul_(p.relax_per_decade * p.drift_scale)

    def drift(self, g_prog: Tensor, coeffs: Tensor | None, t: float, z: Tensor | None) -> Tensor:
        g_relax = self.params.g_relax
        lost = (coeffs * math.log10(1 + t / self.params.t0)).clamp_(max=1.0)
        return (g_relax + (g_prog - g_relax) * (1 - lost)).clamp_(self.g_min, self.g_max)

    def read_noise(self) -> ReadNoise | None:
        """Per-read variance of normalised tile weights u (|u| <= 1 maps onto g_min..g_max): the
        weight's device at g_min + |u| span, its partner at g_min, each with read std relative x g,
        so var = relative^2 ((|u| + r)^2 + r^2) = relative^2 (2 r^2 + 2 r |u| + u^2), r = g_min / span."""
        p = self.params
        if p.read_relative == 0:
            return None
        r, rel2 = p.g_min / (p.g_max - p.g_min), p.read_relative**2
        return ReadNoise(c0=2 * r * r * rel2, c1=2 * r * rel2, c2=rel2)

    def aihwkit_model(self) -> FamilyNoiseModel:
        return FamilyNoiseModel(self)
