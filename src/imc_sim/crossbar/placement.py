"""Which layers stay digital: ``--digital-layers`` patterns resolved against a model's analog layers.

A pattern works as in :mod:`imc_sim.peft.targets` (a preset such as ``ff2``, a module name, a
name suffix, or a full regular expression); it must match at least one layer that would otherwise
go onto tiles.
"""

from __future__ import annotations

from torch import nn

from imc_sim.crossbar.mapping import analog_layer_names
from imc_sim.peft.targets import names_matching


def digital_layer_names(model: nn.Module, patterns: str, analog_head: bool = False) -> list[str]:
    """The analog layers of ``model`` matched by the comma-separated ``patterns``, in model order."""
    return names_matching(analog_layer_names(model, analog_head), patterns, "--digital-layers")
