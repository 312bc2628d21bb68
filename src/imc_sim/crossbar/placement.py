"""Which layers stay digital: ``--digital-layers`` patterns resolved against a model's analog layers.

A pattern works as in :mod:`imc_sim.peft.targets` (a preset such as ``ff2``, a module name, a
name suffix, or a full regular expression); it must match at least one layer that would otherwise
go onto tiles.
"""

from __future__ import annotations

from torch import nn

from imc_sim.crossbar.mapping import analog_layer_names
from imc_sim.errors import ImcSimError
from imc_sim.peft.targets import find_targets


def digital_layer_names(model: nn.Module, patterns: str, analog_head: bool = False) -> list[str]:
    """The analog layers of ``model`` matched by the comma-separated ``patterns``, in model order."""
    analog = analog_layer_names(model, analog_head)
    split = [p.strip() for p in patterns.split(",") if p.strip()]
    if not split:
        raise ImcSimError("empty --digital-layers; give module-name patterns or a preset")
    chosen: set[str] = set()
    for pattern in split:
        try:
            hits = set(find_targets(model, pattern)) & set(analog)
        except ImcSimError:
            hits = set()
        if not hits:
            raise ImcSimError(f"--digital-layers pattern {pattern!r} matches no analog layer "
                              f"(the {len(analog)} analog layers run from {analog[0]} to {analog[-1]})"
                              if analog else f"--digital-layers pattern {pattern!r}: no analog layers")
        chosen |= hits
    return [name for name in analog if name in chosen]
