"""Moment tables of a device: the drifted, normalised weight's mean and std given its target.

For each drift time t and normalised target u in [-1, 1], E[w_t | u] and sd[w_t | u], measured once
by Monte Carlo through the profile's device family (programming noise, drift coefficients, drift
and the read noise accumulated by then), as aihwkit's tiles apply them: u maps onto a device pair
(aihwkit's ``SinglePairConductanceConverter``, the whole grid as one tile), and at each time the
programmed weights are converted to a pair afresh before the drift (aihwkit 1.1.0's
``apply_drift_noise``); with several device pairs per weight, each pair is programmed and drifted
apart and the weight reads their mean. The draws come from one ``torch.Generator`` seeded with ``seed``.
``sigma-target auto`` reads the std from these tables; device-aware training draws its weights from
the quantile tables measured from the same draws (:mod:`imc_sim.devices.quantiles`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from aihwkit.inference.converter.conductance import SinglePairConductanceConverter
from torch import Tensor

from imc_sim.devices.families import FAMILIES, build_family
from imc_sim.devices.family import DeviceFamily
from imc_sim.devices.profile import DeviceProfile

GRID = 129  # normalised target values in [-1, 1]
SAMPLES = 16384  # Monte-Carlo draws per target value (table mean error ~ std / 128)


def weight_level(profile: DeviceProfile) -> bool:
    """Noise defined on weights, not conductances (no per-tile normalisation applies)."""
    return FAMILIES[profile.model].weight_level


def _normal(like: Tensor, generator: torch.Generator) -> Tensor:
    return torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)


def _drifted_weights(family: DeviceFamily, u: Tensor, times: list[float], generator: torch.Generator,
                     devices: int = 1) -> list[Tensor]:
    """Normalised weights ``u`` programmed once, then read at each of ``times`` (s); a pair
    family's weight is the mean of ``devices`` pairs, each programmed and drifted apart from the
    programmed mean, as deployed tiles do (``conductance.devices_per_weight``)."""
    def drift(g: Tensor, coeffs: Tensor | None, t: float) -> Tensor:
        return family.drift(g, coeffs, t, _normal(g, generator) if family.drift_noise else None)

    if family.weight_level:
        programmed = family.program(u, _normal(u, generator))
        coeffs = family.drift_coefficients(u, _normal(u, generator))
        return [drift(programmed, coeffs, t) for t in times]
    pair = SinglePairConductanceConverter(g_max=family.g_max, g_min=family.g_min)
    targets, params = pair.convert_to_conductances(u)
    programmed = sum(pair.convert_back_to_weights([family.program(g, _normal(g, generator)) for g in targets],
                                                  params) for _ in range(devices)) / devices
    coeffs = [[family.drift_coefficients(g, _normal(g, generator)) for g in targets] for _ in range(devices)]
    out = []
    for t in times:
        again, params_t = pair.convert_to_conductances(programmed)
        reads = [pair.convert_back_to_weights([drift(g, c, t) for g, c in zip(again, each, strict=True)],
                                              params_t) for each in coeffs]
        out.append(sum(reads) / devices)
    return out


@dataclass
class GridDraws:
    """The Monte-Carlo draws behind the tables: ``targets`` [GRID, SAMPLES] (each row one u of
    the grid) and the drifted weights ``drifted[k]`` of the same shape at ``times[k]`` (s)."""

    times: list[float]
    targets: Tensor
    drifted: list[Tensor]
    weight_level: bool

    @classmethod
    @torch.no_grad()
    def measure(cls, profile: DeviceProfile, times: list[float], seed: int = 0,
                device: torch.device | str = "cpu") -> GridDraws:
        """Draws at ``times`` (s), on ``device``, from a generator seeded with ``seed``."""
        profile.check_times(times)
        family = build_family(profile)
        generator = torch.Generator(device=device).manual_seed(seed)
        u = torch.linspace(-1.0, 1.0, GRID, device=device)
        targets = u.repeat_interleave(SAMPLES).view(GRID, SAMPLES)
        times = list(times)
        drifted = _drifted_weights(family, targets, times, generator, profile.devices_per_weight)
        return cls(times, targets, drifted, family.weight_level)


@dataclass
class MomentTables:
    """E[w_t | u] and sd[w_t | u] on a grid of u in [-1, 1], one row per drift time."""

    times: list[float]
    mean: Tensor  # [times, GRID]
    std: Tensor  # [times, GRID]
    weight_level: bool = False  # noise independent of the target: mean = u exactly, std constant

    @classmethod
    def measure(cls, profile: DeviceProfile, times: list[float], seed: int = 0,
                device: torch.device | str = "cpu") -> MomentTables:
        """Tables at ``times`` (s), measured on ``device`` from a generator seeded with ``seed``."""
        return cls.of(GridDraws.measure(profile, times, seed, device))

    @classmethod
    def of(cls, draws: GridDraws) -> MomentTables:
        """The tables of ``draws``."""
        return cls(draws.times, torch.stack([w.mean(dim=1) for w in draws.drifted]),
                   torch.stack([w.std(dim=1) for w in draws.drifted]), draws.weight_level)

    def __post_init__(self) -> None:
        # [1, (mean, std), times, GRID]: the image that grid_sample interpolates
        self.image = torch.stack([self.mean, self.std]).unsqueeze(0).contiguous()

    def lookup(self, u: Tensor, k: int) -> tuple[Tensor, Tensor]:
        """(mean, std) at normalised targets ``u`` for time index ``k``, linearly interpolated in u
        (targets beyond [-1, 1] take the edge values), on u's device (the tables are moved there)."""
        if self.weight_level:
            return u.clone(), torch.empty_like(u).copy_(self.std[k].mean())
        rows = len(self.times)
        flat = u.reshape(-1).float()
        time = 2 * k / (rows - 1) - 1 if rows > 1 else 0.0
        grid = torch.stack([flat, torch.full_like(flat, time)], dim=-1).view(1, 1, -1, 2)
        out = F.grid_sample(self.image.to(u.device), grid, mode="bilinear", padding_mode="border",
                            align_corners=True)
        return out[0, 0, 0].view(u.shape), out[0, 1, 0].view(u.shape)
