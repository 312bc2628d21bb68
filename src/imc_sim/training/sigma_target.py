"""StochGRASP's ``sigma_target auto``: the device's weight error as one std in weight units."""

from __future__ import annotations

import math

import torch
from torch import nn

from imc_sim.devices.moments import MomentTables
from imc_sim.devices.profile import DeviceProfile
from imc_sim.training.analog_layers import analog_layers
from imc_sim.training.device_aware import effective_weight, mapping_scale


@torch.no_grad()
def sigma_target_auto(model: nn.Module, profile: DeviceProfile, t_seconds: float) -> float:
    """The device's weight error at ``t_seconds``, as one std in weight units (eq. 6's target).

    sqrt(mean over every analog weight w of (alpha * sd[w_t | u] * scale)^2), u = w / scale the
    normalised target, scale the profile's weight mapping, alpha the drift compensation's gain
    (mean |u| / mean |E[w_t | u]| per layer). Monte Carlo with a fixed seed: the same profile and
    time always give the same number.
    """
    tables = MomentTables.measure(profile, [t_seconds])
    total, count = 0.0, 0
    for _, module in analog_layers(model):
        w = effective_weight(module)[0]
        scale = mapping_scale(profile, w)
        u = w / scale
        mean, std = tables.lookup(u, 0)
        alpha = (u.abs().mean() / mean.abs().mean().clamp_min(1e-12)
                 if profile.compensation != "none" else 1.0)
        total += float(((alpha * std * scale) ** 2).sum())
        count += w.numel()
    return math.sqrt(total / count)
