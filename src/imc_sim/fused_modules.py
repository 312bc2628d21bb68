"""torch modules that read a child layer's weight directly instead of calling the layer.

``nn.MultiheadAttention`` reads ``out_proj.weight`` and ``out_proj.bias`` itself, so a wrapper or a
tile in place of its output projection is either bypassed or breaks it; ``nn.TransformerEncoder``
and ``nn.TransformerEncoderLayer`` have a fused inference path that reads every layer's weight.
Adapters, device-aware training and tiles leave the first alone and turn the second off.
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn


def attention_projections(model: nn.Module, names: Iterable[str]) -> set[str]:
    """The layers of ``names`` that an ``nn.MultiheadAttention`` holds (its output projection):
    it uses their weight and bias without calling them."""
    return {n for n in names if isinstance(model.get_submodule(n.rpartition(".")[0]), nn.MultiheadAttention)}


def unfuse_transformers(model: nn.Module, names: Iterable[str]) -> None:
    """Turn off torch's fused inference path in each ``nn.TransformerEncoder`` and
    ``nn.TransformerEncoderLayer`` above a layer of ``names``: that path reads the layers' weights
    directly instead of calling them (the unfused path computes the same)."""
    for name in names:
        parts = name.split(".")
        for depth in range(len(parts)):
            module = model.get_submodule(".".join(parts[:depth]))
            if isinstance(module, nn.TransformerEncoder):
                module.use_nested_tensor = False
            elif isinstance(module, nn.TransformerEncoderLayer):
                module.activation_relu_or_gelu = 0  # read by the fused path only
