"""Moment tables of a device: the drifted, normalised weight's mean and std given its target.

For each drift time t and normalised target u in [-1, 1], E[w_t | u] and sd[w_t | u], measured once
by Monte Carlo through the profile's noise model (programming noise, drift coefficients, drift and
the read noise accumulated by then). Device-aware training draws its weights from them (one Gaussian
draw and an interpolation per weight) instead of a full realization per step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from imc_sim.devices.aihwkit_models import build_noise_model
from imc_sim.devices.profile import DeviceProfile

GRID = 129  # normalised target values in [-1, 1]
SAMPLES = 16384  # Monte-Carlo draws per target value (table mean error ~ std / 128)


def weight_level(profile: DeviceProfile) -> bool:
    """Noise defined on weights, not conductances (no per-tile normalisation applies)."""
    return profile.model in ("gaussian", "ideal")


@dataclass
class MomentTables:
    """E[w_t | u] and sd[w_t | u] on a grid of u in [-1, 1], one row per drift time."""

    times: list[float]
    mean: Tensor  # [times, GRID]
    std: Tensor  # [times, GRID]
    weight_level: bool = False  # noise independent of the target: mean = u exactly, std constant

    @classmethod
    @torch.no_grad()
    def measure(cls, profile: DeviceProfile, times: list[float], seed: int = 0) -> MomentTables:
        profile.check_times(times)
        model = build_noise_model(profile)
        u = torch.linspace(-1.0, 1.0, GRID)
        targets = u.repeat_interleave(SAMPLES).view(GRID, SAMPLES)
        means, stds = [], []
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for t in times:
                programmed, params = model.apply_programming_noise(targets)
                drifted = model.apply_drift_noise(programmed, params, t)
                means.append(drifted.mean(dim=1))
                stds.append(drifted.std(dim=1))
        return cls(list(times), torch.stack(means), torch.stack(stds), weight_level(profile))

    def __post_init__(self) -> None:
        # [1, (mean, std), times, GRID]: the image that grid_sample interpolates
        self.image = torch.stack([self.mean, self.std]).unsqueeze(0).contiguous()

    @staticmethod
    def grid(u: Tensor) -> Tensor:
        """The sampling grid of normalised targets ``u``: [1, 1, n, (x = u, y = time)]; a frozen
        layer's is built once and reused at every time."""
        grid = torch.empty(1, 1, u.numel(), 2)
        grid[0, 0, :, 0] = u.reshape(-1)
        return grid

    def at(self, u: Tensor, grid: Tensor, k: int) -> tuple[Tensor, Tensor]:
        """(mean, std) for time index ``k`` at targets ``u`` (whose :meth:`grid` is given),
        linearly interpolated in u (targets beyond [-1, 1] take the edge values)."""
        if self.weight_level:
            return u.clone(), torch.full_like(u, self.std[k].mean().item())
        rows = len(self.times)
        grid[0, 0, :, 1] = 2 * k / (rows - 1) - 1 if rows > 1 else 0.0
        out = F.grid_sample(self.image, grid, mode="bilinear", padding_mode="border",
                            align_corners=True)
        return out[0, 0, 0].view(u.shape), out[0, 1, 0].view(u.shape)

    def lookup(self, u: Tensor, k: int) -> tuple[Tensor, Tensor]:
        """(mean, std) at normalised targets ``u`` for time index ``k`` (linear interpolation)."""
        return self.at(u, self.grid(u), k)
