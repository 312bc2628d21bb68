"""Monte-Carlo portraits of a device profile, measured through its aihwkit noise model.

- programming-noise std versus target conductance (uS; weight units for weight-level models);
- mean conductance after drift, relative to the programmed one, versus time for a few states.
"""

from __future__ import annotations

from typing import Any

import torch

from imc_sim.devices.aihwkit_models import build_noise_model
from imc_sim.devices.noise_models import IdealNoiseModel
from imc_sim.devices.profile import ALLOWED_TIMES, DeviceProfile

LEVELS = (0.25, 0.5, 1.0)  # g / g_max of the drift curves


def _g_max(model: Any) -> float:
    return float(getattr(model, "g_max", None) or 1.0)


def log_times(n: int = 40) -> list[float]:
    """1 s to 10 years, log-spaced."""
    return torch.logspace(0, torch.log10(torch.tensor(10 * 365 * 86400.0)).item(), n).tolist()


@torch.no_grad()
def programming_sigma(profile: DeviceProfile, points: int = 21, samples: int = 20000,
                      seed: int = 0) -> dict[str, Any]:
    """Measured std of the programmed value at ``points`` targets from 0 to g_max."""
    model = build_noise_model(profile)
    g_max = _g_max(model)
    targets = torch.linspace(0, g_max, points)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if isinstance(model, IdealNoiseModel):  # weight-level: one tile of weights in [0, 1]
            w = targets.repeat_interleave(samples).view(points, samples)
            prog, _ = model.apply_programming_noise(torch.cat([w.flatten(), torch.ones(1)]))
            sigma = (prog[:-1].view(points, samples) - w).std(dim=1)
            unit = "weight"
        else:
            g = targets.repeat_interleave(samples).view(points, samples)
            sigma = model.apply_programming_noise_to_conductance(g.clone()).std(dim=1)
            unit = "uS"
    return {"target": targets.tolist(), "sigma": sigma.tolist(), "unit": unit}


@torch.no_grad()
def drift_curves(profile: DeviceProfile, times: list[float] | None = None, samples: int = 20000,
                 seed: int = 0) -> dict[str, Any]:
    """Mean g(t) / mean g(programmed) for states ``LEVELS`` x g_max, at ``times`` (seconds)."""
    model = build_noise_model(profile)
    allowed = ALLOWED_TIMES.get(profile.model)
    times = list(allowed) if allowed else (times or log_times())
    curves: dict[str, list[float]] = {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for level in LEVELS:
            if isinstance(model, IdealNoiseModel):
                curves[f"{level:g}"] = [1.0] * len(times)
                continue
            g_target = torch.full((samples,), level * _g_max(model))
            g_prog = model.apply_programming_noise_to_conductance(g_target.clone())
            params = model.generate_drift_coefficients(g_target.clone())
            base = g_prog.mean()
            curves[f"{level:g}"] = [
                (model.apply_drift_noise_to_conductance(g_prog, params, t).mean() / base).item()
                for t in times
            ]
    return {"times": times, "levels": curves}
