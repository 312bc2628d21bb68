"""Which layers an adapter modifies: presets and module-name patterns, for Linear and GPT-2 Conv1D.

Presets (paper Table IV):
- ``all-linear``: every Linear/Conv1D inside the transformer blocks (not the pooler or head);
- ``kv-ff2``: key and value projections and the second feed-forward projection;
- ``ff2``: the second feed-forward projection only.
GPT-2 fuses query, key and value into one ``c_attn`` Conv1D; ``kv-ff2`` takes it whole, since an
input-side adapter cannot tell the three apart.

Anything else is a comma-separated list of patterns: a pattern matches a module whose name equals
it, ends with ``.<pattern>``, or matches it as a full regular expression.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from imc_sim.errors import ImcSimError
from imc_sim.fused_modules import attention_projections

BLOCK = r"(?:.*\.)?(layer|layers|h|block|blocks|albert_layers)\.\d+\..*"
"""A module inside a numbered transformer block (ALBERT's shared block: ``albert_layers.N``), also
at the top of the model (``layers.0.linear1`` of an ``nn.TransformerEncoder``)."""
KEY_VALUE = r".*\.(key|value|k_proj|v_proj|k_lin|v_lin|key_proj|value_proj|attn\.k|attn\.v|c_attn)"
"""Key and value projections: BERT, Llama/OPT, DistilBERT, DeBERTa, MPNet, GPT-2 (fused)."""
FF2 = r".*\.(\d+\.output\.dense|mlp\.c_proj|ffn\.lin2|fc2|mlp\.down_proj|ffn_output)"
"""The second feed-forward projection: BERT, GPT-2, DistilBERT, OPT/Phi, Llama, ALBERT."""
PRESETS: dict[str, tuple[str, ...]] = {
    "all-linear": (BLOCK,),
    "kv-ff2": (KEY_VALUE, FF2),
    "ff2": (FF2,),
}
"""Each preset's parts; every part must match a layer of the model (a model whose key and value
layers the preset does not know is refused, not adapted at its feed-forward layers alone)."""

LINEAR_TYPES = (nn.Linear, Conv1D)


def model_type(model: nn.Module) -> str:
    """The Hugging Face ``model_type`` of ``model`` (its class name if it has no config)."""
    return str(getattr(getattr(model, "config", None), "model_type", type(model).__name__))


def is_linear(module: nn.Module) -> bool:
    """nn.Linear or Hugging Face's Conv1D (GPT-2), the layers that become crossbar tiles."""
    return isinstance(module, LINEAR_TYPES)


def _matches(pattern: str, name: str) -> bool:
    """``name`` is ``pattern``, ends with ``.pattern``, or fully matches it as a regular expression."""
    if name == pattern or name.endswith("." + pattern):
        return True
    try:
        return re.fullmatch(pattern, name) is not None
    except re.error:
        return False


def names_matching(names: Sequence[str], patterns: str, option: str) -> list[str]:
    """The ``names`` (analog layers, in model order) matched by the comma-separated ``patterns``,
    each a preset, a module name, a name suffix or a full regular expression; a one-line error
    naming ``option`` for an empty list or a pattern that matches none of them."""
    split = [p.strip() for p in patterns.split(",") if p.strip()]
    if not split:
        raise ImcSimError(f"empty {option}; give module-name patterns or a preset")
    chosen: set[str] = set()
    for pattern in split:
        rules = PRESETS.get(pattern, (pattern,))
        hits = {name for name in names if any(_matches(rule, name) for rule in rules)}
        if not hits:
            raise ImcSimError(f"{option} pattern {pattern!r} matches no analog layer (the {len(names)} "
                              f"analog layers run from {names[0]} to {names[-1]})"
                              if names else f"{option} pattern {pattern!r}: no analog layers")
        chosen |= hits
    return [name for name in names if name in chosen]


def find_targets(model: nn.Module, targets: str) -> list[str]:
    """Names of the Linear/Conv1D modules selected by a preset or a pattern list.

    A preset leaves out the output projection of an ``nn.MultiheadAttention``, which the attention
    uses without calling it (:func:`imc_sim.fused_modules.attention_projections`); a pattern naming
    one is refused. Raises :class:`ImcSimError` when a pattern (or a whole preset) matches no such
    module.
    """
    linear = [n for n, m in model.named_modules() if is_linear(m)]
    read_directly = attention_projections(model, linear)
    if targets in PRESETS:
        linear = [n for n in linear if n not in read_directly]
        parts = [[n for n in linear if _matches(rule, n)] for rule in PRESETS[targets]]
        if not all(parts):
            raise ImcSimError(f"target preset {targets!r} does not know the layers of model type "
                              f"{model_type(model)!r} "
                              f"({len(linear)} Linear/Conv1D modules, e.g. {', '.join(linear[:3])}); give "
                              "--targets as module-name patterns")
        return [n for n in linear if any(n in part for part in parts)]
    patterns = [p.strip() for p in targets.split(",") if p.strip()]
    if not patterns:
        raise ImcSimError("empty --targets; give a preset or module-name patterns")
    chosen: list[str] = []
    for pattern in patterns:
        hits = [n for n in linear if _matches(pattern, n)]
        if not hits:
            raise ImcSimError(
                f"target pattern {pattern!r} matches no Linear/Conv1D module "
                f"(presets: {', '.join(PRESETS)})"
            )
        chosen += [n for n in hits if n not in chosen]
    refused = [n for n in chosen if n in read_directly]
    if refused:
        raise ImcSimError(f"{', '.join(refused)}: nn.MultiheadAttention reads its output projection's "
                          "weight directly instead of calling it, so an adapter there would be bypassed; "
                          "leave it out of --targets")
    return [n for n in linear if n in chosen]


def in_out_features(layer: nn.Module) -> tuple[int, int]:
    """(D_in, D_out) of a Linear (weight [out, in]) or Conv1D (weight [in, out])."""
    if isinstance(layer, nn.Linear):
        return layer.in_features, layer.out_features
    d_in, d_out = layer.weight.shape
    return d_in, d_out


def weight_in_out(layer: nn.Module) -> torch.Tensor:
    """The weight as the paper writes it, W in R^{D_in x D_out} (a view, no copy)."""
    return layer.weight.T if isinstance(layer, nn.Linear) else layer.weight


def linear_forward(layer: nn.Module, x: torch.Tensor, w_in_out: torch.Tensor) -> torch.Tensor:
    """y = x W + b with W given as [D_in, D_out], for either layer type."""
    bias = layer.bias
    if bias is None:
        return x @ w_in_out
    return torch.addmm(bias, x.reshape(-1, x.shape[-1]), w_in_out).view(*x.shape[:-1], -1)


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    """Put ``new`` where the sub-module called ``name`` was."""
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


@torch.no_grad()
def with_weights(layer: nn.Module, w_in_out: torch.Tensor, bias: torch.Tensor | None) -> nn.Module:
    """A plain layer of ``layer``'s type holding ``w_in_out`` ([D_in, D_out]) and ``bias``."""
    d_in, d_out = in_out_features(layer)
    with torch.device(layer.weight.device):  # built where the layer lives, never via the CPU
        if isinstance(layer, nn.Linear):
            out: nn.Module = nn.Linear(d_in, d_out, bias=bias is not None,
                                       dtype=layer.weight.dtype)
            out.weight.copy_(w_in_out.T)
        else:
            out = Conv1D(d_out, d_in)
            if out.weight.dtype != layer.weight.dtype:
                out = out.to(layer.weight.dtype)
            out.weight.copy_(w_in_out)
    if bias is not None:
        out.bias.copy_(bias)
    return out
