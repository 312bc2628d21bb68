"""Attach weight-space GRASP / StochGRASP, the eq. 6 penalty, and evaluation realizations."""

from __future__ import annotations

import torch
from torch import nn

from imc_sim.peft.inject import adapter_layers, wrap_targets
from imc_sim.peft.stochgrasp.config import StochGraspConfig
from imc_sim.peft.stochgrasp.layer import StochGraspLayer


def attach_stochgrasp(model: nn.Module, config: StochGraspConfig) -> nn.Module:
    """Wrap every target layer in a :class:`StochGraspLayer`; only mu, sigma and head train."""
    wrap_targets(model, config.targets, lambda name, layer: StochGraspLayer(layer, name, config))
    return model


def stochgrasp_layers(model: nn.Module) -> list[StochGraspLayer]:
    return [m for _, m in adapter_layers(model) if isinstance(m, StochGraspLayer)]


def sigma_penalty(model: nn.Module, sigma_target: float) -> torch.Tensor:
    """sum_l sum_ij (sigma_l[f(i), g(j)] - sigma_target)^2, the bracket of eq. 6."""
    return torch.stack([m.penalty(sigma_target) for m in stochgrasp_layers(model)]).sum()


def set_eval_mode(
    model: nn.Module, mode: str, sigma_noise: float = 0.0, seed: int | None = None,
    relative: bool = False,
) -> None:
    """Fix one evaluation realization in every StochGRASP layer (see the layer's docstring):
    with ``seed``, drawn layer after layer from one generator on the layers' device; an injected
    ``sigma_noise`` is in weight units, or a fraction of each layer's weight std (``relative``)."""
    generators: dict[torch.device, torch.Generator] = {}
    for layer in stochgrasp_layers(model):
        device = layer.mu.device
        if seed is not None and device not in generators:
            generators[device] = torch.Generator(device=device).manual_seed(seed)
        layer.set_eval_mode(mode, sigma_noise, generators.get(device), relative)


def weight_scales(model: nn.Module) -> dict[str, float]:
    """Each StochGRASP layer's base weight std (the unit of a relative injected sigma), by name."""
    return {name: m.weight_scale() for name, m in adapter_layers(model) if isinstance(m, StochGraspLayer)}
