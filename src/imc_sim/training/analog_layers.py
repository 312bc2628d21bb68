"""The layers device-aware training puts on the device: every Linear/Conv1D layer inside the
transformer blocks (the layers deploy maps), or a subset chosen by name."""

from __future__ import annotations

import re

from torch import nn

from imc_sim.fused_modules import attention_projections
from imc_sim.peft.inject import AdapterLayer
from imc_sim.peft.targets import BLOCK, is_linear, names_matching
from imc_sim.training.static_ranges import deploy_name


def _is_layer(module: nn.Module) -> bool:
    return isinstance(module, AdapterLayer) or hasattr(module, "base_layer") or is_linear(module)


def analog_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The outermost adapter / LoRA / plain Linear-Conv1D modules inside the transformer blocks,
    but for an ``nn.MultiheadAttention``'s output projection, which deploy leaves digital."""
    block = re.compile(BLOCK)
    chosen: list[tuple[str, nn.Module]] = []
    for name, module in model.named_modules():
        if any(name.startswith(n + ".") for n, _ in chosen):
            continue
        if _is_layer(module) and block.fullmatch(name):
            chosen.append((name, module))
    read_directly = attention_projections(model, [name for name, _ in chosen])
    return [(name, module) for name, module in chosen if name not in read_directly]


def device_layers(model: nn.Module, patterns: str | None) -> list[tuple[str, nn.Module]]:
    """The analog layers that train against the device: all of them (``patterns`` None), or those
    whose deployed name matches one of the comma-separated ``patterns`` (as ``--digital-layers``:
    a preset, a name, a suffix such as ``attention.output.dense``, or a regular expression)."""
    layers = analog_layers(model)
    if patterns is None or not layers:  # no layers: DeviceTraining says so
        return layers
    names = [deploy_name(model, name) for name, _ in layers]
    chosen = set(names_matching(names, patterns, "--device-layers"))
    return [layer for layer, deployed in zip(layers, names, strict=True) if deployed in chosen]
