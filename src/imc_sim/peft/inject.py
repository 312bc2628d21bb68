"""Shared plumbing of the in-house methods: wrap target layers, freeze, merge back to plain layers."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from imc_sim.backbones import is_head
from imc_sim.fused_modules import unfuse_transformers
from imc_sim.peft.targets import find_targets, replace_module, with_weights


class AdapterLayer(nn.Module):
    """A wrapped base layer (frozen, at ``self.base``) whose adapter folds into plain weights."""

    base: nn.Module

    def effective_weight(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(W', b') with W' as [D_in, D_out] such that this layer computes x W' + b' (with
        gradients to the adapter): what a crossbar holding this layer is programmed with."""
        raise NotImplementedError

    @torch.no_grad()
    def merged(self) -> nn.Module:
        """A plain layer of the base layer's type computing what this adapter computes."""
        return with_weights(self.base, *self.effective_weight())


def freeze_all_but(model: nn.Module, trainable: Callable[[str], bool]) -> None:
    """requires_grad = trainable(name) for every parameter, the task head always trainable."""
    for name, param in model.named_parameters():
        param.requires_grad_(trainable(name) or is_head(name, model))


def wrap_targets(
    model: nn.Module, targets: str, make: Callable[[str, nn.Module], AdapterLayer]
) -> list[str]:
    """Replace every target layer by ``make(name, layer)``; freeze all but adapters and head
    (torch's fused Transformer encoder path, which would bypass the adapters, turned off)."""
    names = find_targets(model, targets)
    for name in names:
        replace_module(model, name, make(name, model.get_submodule(name)))
    unfuse_transformers(model, names)
    adapters = {f"{n}." for n in names}
    freeze_all_but(
        model, lambda p: any(p.startswith(a) for a in adapters) and ".base." not in p
    )
    return names


def adapter_layers(model: nn.Module) -> list[tuple[str, AdapterLayer]]:
    """Every adapter layer in ``model`` with its name."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, AdapterLayer)]


def merge_adapters(model: nn.Module) -> nn.Module:
    """Fold every adapter into its base layer, in place; returns the plain model."""
    for name, layer in adapter_layers(model):
        replace_module(model, name, layer.merged())
    return model
