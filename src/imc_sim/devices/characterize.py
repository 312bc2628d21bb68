"""Monte-Carlo portraits of a device profile, measured through its device family.

- programming-noise std versus target conductance (uS; weight units for weight-level families);
- mean conductance after drift, relative to the programmed one, versus time for a few states.

The draws come from one ``torch.Generator`` on ``device``, seeded with ``seed``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from imc_sim.devices.families import build_family
from imc_sim.devices.profile import DeviceProfile

LEVELS = (0.25, 0.5, 1.0)  # g / g_max of the drift curves


def log_times(n: int = 40) -> list[float]:
    """1 s to 10 years, log-spaced."""
    return torch.logspace(0, math.log10(10 * 365 * 86400.0), n, dtype=torch.float64).tolist()


def _normal(like: Tensor, generator: torch.Generator) -> Tensor:
    return torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)


@torch.no_grad()
def programming_sigma(profile: DeviceProfile, points: int = 21, samples: int = 20000,
                      seed: int = 0, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Measured std of the programmed value at ``points`` targets from 0 to g_max (one tile of
    weights from 0 to 1 for a weight-level family)."""
    family = build_family(profile)
    generator = torch.Generator(device=device).manual_seed(seed)
    targets = torch.linspace(0, family.g_max, points, device=device)
    g = targets.repeat_interleave(samples).view(points, samples)
    sigma = family.program(g, _normal(g, generator)).std(dim=1)
    return {"target": targets.tolist(), "sigma": sigma.tolist(),
            "unit": "weight" if family.weight_level else "uS"}


@torch.no_grad()
def drift_curves(profile: DeviceProfile, times: list[float] | None = None, samples: int = 20000,
                 seed: int = 0, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Mean g(t) / mean g(programmed) for states ``LEVELS`` x g_max, at ``times`` (seconds; a
    family known at a few times only is shown at those)."""
    family = build_family(profile)
    times = list(family.allowed_times or times or log_times())
    if not family.drifts:
        return {"times": times, "levels": {f"{level:g}": [1.0] * len(times) for level in LEVELS}}
    generator = torch.Generator(device=device).manual_seed(seed)
    curves: dict[str, list[float]] = {}
    for level in LEVELS:
        g_target = torch.full((samples,), level * family.g_max, device=device)
        g_prog = family.program(g_target, _normal(g_target, generator))
        coeffs = family.drift_coefficients(g_target, _normal(g_target, generator))
        means = [family.drift(g_prog, coeffs, t, _normal(g_prog, generator) if family.drift_noise
                              else None).mean() for t in times]
        curves[f"{level:g}"] = (torch.stack(means) / g_prog.mean()).tolist()
    return {"times": times, "levels": curves}
