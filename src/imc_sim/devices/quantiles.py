"""Quantile tables of a device: the drifted, normalised weight's whole distribution given its target.

For each drift time t and normalised target u on the moment tables' grid of [-1, 1]
(:mod:`imc_sim.devices.moments`, the same Monte-Carlo draws through the device family), the
quantiles of w_t | u at the levels Phi(z_j) of the normal scores

    z_j = -Z_MAX + j Z_STEP,   j = 0 .. LEVELS - 1   (-6 .. 6 in steps of 0.25)

measured where |z_j| <= Z_MEASURED (3.5) and extended linearly from the outer measured segment
beyond. Drawing w_t is then an inverse-CDF draw, w = Q_u(Phi(z)) with z ~ N(0, 1): the table
interpolated linearly in u between grid points and in z between normal scores, z clamped to
+-Z_MAX (P(|z| > 6) = 2e-9). Unlike a mean and a std, this keeps the skew and the heavy tails
that the spread of drift exponents gives drifted conductances. Weight-level families (noise
independent of the target) keep one row: the quantiles of w_t - u over all targets, added to u.

Tabulating at normal scores rather than at evenly spaced levels puts the table's points where a
draw needs them (a piece-wise linear Q is exact for a Gaussian), and lets the draw start from the
standard normals every path already has (the compiled pass's Philox normals, a stream's normals).
With 16,384 draws per target the outer measured quantile (level 2.3e-4) rests on about four
draws; the 1st and 99th percentiles on 164 (their table error is about 0.03 std).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from imc_sim.devices.moments import GridDraws
from imc_sim.devices.profile import DeviceProfile

Z_MEASURED = 3.5  # the outermost normal score measured
Z_MAX = 6.0  # the outermost normal score tabulated (linearly extended beyond Z_MEASURED)
Z_STEP = 0.25  # spacing of the normal scores
LEVELS = round(2 * Z_MAX / Z_STEP) + 1  # 49 quantile levels per target and time
_OUTER = round((Z_MAX - Z_MEASURED) / Z_STEP)  # extended levels on either side


def normal_scores(device: torch.device | str = "cpu") -> Tensor:
    """The normal scores z_j of the table's quantile levels Phi(z_j), [LEVELS]."""
    return torch.linspace(-Z_MAX, Z_MAX, LEVELS, device=device)


def _extended(measured: Tensor) -> Tensor:
    """Quantiles [..., measured levels] extended linearly from their outer segments to
    [..., LEVELS]."""
    steps = torch.arange(_OUTER, 0, -1, device=measured.device, dtype=measured.dtype)
    low = measured[..., :1] - (measured[..., 1:2] - measured[..., :1]) * steps
    high = measured[..., -1:] + (measured[..., -1:] - measured[..., -2:-1]) * steps.flip(0)
    return torch.cat([low, measured, high], dim=-1)


@dataclass
class QuantileTables:
    """Quantiles of w_t | u at levels Phi(z_j), [times, GRID, LEVELS] (weight-level families:
    of w_t - u over all targets, [times, 1, LEVELS])."""

    times: list[float]
    values: Tensor
    weight_level: bool = False

    @classmethod
    def measure(cls, profile: DeviceProfile, times: list[float], seed: int = 0,
                device: torch.device | str = "cpu") -> QuantileTables:
        """Tables at ``times`` (s), measured on ``device`` from a generator seeded with ``seed``
        (the draws of :class:`~imc_sim.devices.moments.MomentTables` with the same seed)."""
        return cls.of(GridDraws.measure(profile, times, seed, device))

    @classmethod
    @torch.no_grad()
    def of(cls, draws: GridDraws) -> QuantileTables:
        """The tables of ``draws``: their empirical quantiles (linear between order statistics)."""
        scores = normal_scores(draws.targets.device).double()[_OUTER: LEVELS - _OUTER]
        levels = torch.special.ndtr(scores).float()
        rows = []
        for w in draws.drifted:
            if draws.weight_level:
                w = (w - draws.targets).view(1, -1)
            rows.append(_extended(torch.quantile(w, levels, dim=1).T))
        return cls(draws.times, torch.stack(rows).contiguous(), draws.weight_level)

    def to(self, device: torch.device | str) -> QuantileTables:
        """The same tables on ``device``."""
        return QuantileTables(self.times, self.values.to(device), self.weight_level)

    @staticmethod
    def grid(u: Tensor) -> Tensor:
        """The sampling grid of normalised targets ``u``: [1, 1, n, (x = z / Z_MAX, y = u)], x
        written by each :meth:`draw`; a frozen layer's is built once and reused at every step."""
        grid = torch.empty(1, 1, u.numel(), 2, device=u.device)
        grid[0, 0, :, 1] = u.reshape(-1)
        return grid

    def draw(self, grid: Tensor, k: int, z: Tensor) -> Tensor:
        """w_t at the ``k``-th time for the targets of ``grid`` (:meth:`grid`) from standard
        normals ``z`` (their shape), on their device: the table interpolated bilinearly at
        (u, z), u clamped to [-1, 1] and z to +-Z_MAX: the compiled pass's interpolation."""
        grid[0, 0, :, 0] = z.reshape(-1)
        grid[0, 0, :, 0] *= 1.0 / Z_MAX
        image = self.values[k].view(1, 1, -1, LEVELS)
        w = F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)
        w = w.view(z.shape)
        return w.add_(grid[0, 0, :, 1].view(z.shape)) if self.weight_level else w
