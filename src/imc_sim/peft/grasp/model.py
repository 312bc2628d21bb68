"""Attach GRASP to a Hugging Face model: wrap the target layers, freeze the rest."""

from __future__ import annotations

from torch import nn

from imc_sim.peft.grasp.config import GraspConfig
from imc_sim.peft.grasp.layer import GraspLayer
from imc_sim.peft.inject import wrap_targets


def attach_grasp(model: nn.Module, config: GraspConfig) -> nn.Module:
    """Wrap every target layer in a :class:`GraspLayer`; only GRASP and head parameters train."""
    wrap_targets(model, config.targets, lambda name, layer: GraspLayer(layer, name, config))
    return model
