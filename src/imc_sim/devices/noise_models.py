"""Noise laws aihwkit lacks, written as aihwkit ``BaseNoiseModel`` subclasses.

aihwkit's tiles call ``apply_programming_noise(weights)`` once per programming and
``apply_drift_noise(weights, params, t)`` per read-out time; conductance-level laws plug in through
``apply_programming_noise_to_conductance`` / ``generate_drift_coefficients`` /
``apply_drift_noise_to_conductance`` (conductances in uS, times in s). Randomness comes from
torch's global generator, as in aihwkit.
"""

from __future__ import annotations

import math

import torch
from aihwkit.inference.converter.conductance import SinglePairConductanceConverter
from aihwkit.inference.noise.base import BaseNoiseModel
from torch import Tensor


class IdealNoiseModel(BaseNoiseModel):
    """No programming noise, no drift, no read noise: the programmed weights are the targets."""

    @torch.no_grad()
    def apply_programming_noise(self, weights: Tensor) -> tuple[Tensor, list[Tensor | None]]:
        return weights.clone(), [None]

    @torch.no_grad()
    def apply_drift_noise(self, weights: Tensor, drift_noise_parameters: list, t_inference: float) -> Tensor:
        return weights.clone()


class GaussianWeightNoiseModel(IdealNoiseModel):
    """The paper's Gaussian weight noise: w_prog = w + sigma * xi, xi ~ N(0, 1); no drift.

    With ``relative`` the std is ``sigma * max|w|`` of the tile (after the weight mapping), else
    ``sigma`` in the units of the weights themselves (needs a mapping without weight scaling).
    """

    def __init__(self, sigma: float, relative: bool = False):
        super().__init__()
        self.sigma = sigma
        self.relative = relative

    @torch.no_grad()
    def apply_programming_noise(self, weights: Tensor) -> tuple[Tensor, list[Tensor | None]]:
        std = self.sigma * (weights.abs().max() if self.relative else 1.0)
        return weights + std * torch.randn_like(weights), [None]


class FeFETNoiseModel(BaseNoiseModel):
    """Multi-domain FeFET: binomial programming variation, log-time relaxation, read noise.

    - programming: a device switches a fraction p = (g_t - g_min) / (g_max - g_min) of its
      ``n_domains`` ferroelectric domains, so
      sigma_prog(g_t) = scale * ((g_max - g_min) * sqrt(p (1 - p) / n_domains) + sigma_floor);
    - drift (retention): each device relaxes towards ``g_relax`` by a fraction
      r * log10(1 + t / t0) of its distance (capped at 1), with r = relax_per_decade * scale *
      max(0, 1 + relax_spread * xi) drawn once per device at programming;
    - read (cycle-to-cycle) noise: relative Gaussian, sigma_read = relative * g, fresh at every
      MVM: :meth:`cycle_variance` gives it to the periphery (``imc_sim.crossbar.periphery``), which
      draws it per read; the programmed and drifted state carries none of it.
    Conductances stay within [g_min, g_max].
    """

    def __init__(
        self,
        g_max: float,
        g_min: float,
        n_domains: int,
        sigma_floor: float = 0.0,
        prog_scale: float = 1.0,
        t0: float = 1.0,
        relax_per_decade: float = 0.0,
        relax_spread: float = 0.0,
        g_relax: float | None = None,
        drift_scale: float = 1.0,
        read_relative: float = 0.0,
    ):
        super().__init__(SinglePairConductanceConverter(g_max=g_max, g_min=g_min))
        self.g_max, self.g_min = g_max, g_min
        self.n_domains = n_domains
        self.sigma_floor = sigma_floor
        self.prog_scale = prog_scale
        self.t0 = t0
        self.relax_per_decade = relax_per_decade
        self.relax_spread = relax_spread
        self.g_relax = (g_max + g_min) / 2 if g_relax is None else g_relax
        self.drift_scale = drift_scale
        self.read_relative = read_relative

    def programming_sigma(self, g_target: Tensor) -> Tensor:
        """sigma_prog(g_target) in uS (the binomial domain law plus the floor)."""
        span = self.g_max - self.g_min
        p = ((g_target - self.g_min) / span).clamp(0.0, 1.0)
        return self.prog_scale * (span * torch.sqrt(p * (1 - p) / self.n_domains) + self.sigma_floor)

    @torch.no_grad()
    def apply_programming_noise_to_conductance(self, g_target: Tensor) -> Tensor:
        g = g_target + self.programming_sigma(g_target) * torch.randn_like(g_target)
        return g.clamp(self.g_min, self.g_max)

    @torch.no_grad()
    def generate_drift_coefficients(self, g_target: Tensor) -> Tensor:
        spread = (1 + self.relax_spread * torch.randn_like(g_target)).clamp(min=0.0)
        return self.relax_per_decade * self.drift_scale * spread

    @torch.no_grad()
    def apply_drift_noise_to_conductance(
        self, g_prog: Tensor, drift_noise_param: Tensor, t_inference: float
    ) -> Tensor:
        lost = (drift_noise_param * math.log10(1 + t_inference / self.t0)).clamp(max=1.0)
        g = self.g_relax + (g_prog - self.g_relax) * (1 - lost)
        return g.clamp(self.g_min, self.g_max)

    def cycle_variance(self, u: Tensor) -> Tensor | None:
        """Per-read variance of normalised tile weights u (|u| <= 1 maps onto g_min..g_max): the
        weight's device at g_min + |u| (g_max - g_min), its partner at g_min, each with read std
        ``read_relative`` x g, so var = relative^2 ((|u| + r)^2 + r^2), r = g_min / (g_max - g_min)."""
        if self.read_relative == 0:
            return None
        r = self.g_min / (self.g_max - self.g_min)
        return (u.abs() + r).square_().add_(r * r).mul_(self.read_relative**2)
