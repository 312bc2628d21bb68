"""GRASP in the periphery: the frozen base programmed on the tiles, the adapter applied digitally.

Activation-space GRASP (eq. 1) computes y = base(x a[g] + c[g]) with a = 1 / gamma_hat and
c = -beta_hat / gamma_hat per input group: a scale and shift of the layer's input, which is what a
tile's digital periphery can apply before its DAC. Deployed that way, the chip holds the frozen
base weights W (the same for every task fine-tuned from one base model) instead of the merged
diag(a) W, and a task's adapter is swapped without reprogramming. The tile then sees the
transformed inputs, so static input ranges are calibrated with the transform in place.
"""

from __future__ import annotations

import hashlib
import os

import torch
from torch import nn

from imc_sim.checkpoint import LoadedModel, load_adapted, read_checkpoint
from imc_sim.crossbar.mapping import analog_layer_names, chip_name
from imc_sim.errors import ImcSimError

OPTION = "--grasp-periphery"
PERIPHERY_METHODS = ("grasp",)
"""Methods whose adapter is an input-side scale and shift (the weight-space GRASPs are not)."""


def check_periphery(path: str | os.PathLike[str], needed_by: str = OPTION) -> str:
    """The checkpoint's method, or a one-line error naming what ``needed_by`` it (an option, or
    a command) if its adapter cannot run in the periphery."""
    method = read_checkpoint(path)["method"]
    if method not in PERIPHERY_METHODS:
        raise ImcSimError(f"{needed_by} needs an activation-space GRASP checkpoint (--method grasp); "
                          f"{path} is {method}")
    return method


def load_periphery(path: str | os.PathLike[str], torch_device: torch.device | None = None) -> LoadedModel:
    """The checkpoint with its GRASP adapters attached, not merged (on ``torch_device``)."""
    check_periphery(path)
    loaded = load_adapted(path)
    if torch_device is not None:
        loaded.model.to(torch_device)
    return loaded


def base_digest(model: nn.Module, analog_head: bool = False) -> str:
    """SHA-256 (hex) of the weights and biases of ``model``'s analog layers (the base layer of an
    adapter), by the name of the layer they stand for: what a chip shared by tasks holds."""
    h = hashlib.sha256()
    layers = {chip_name(model, n): model.get_submodule(n) for n in analog_layer_names(model, analog_head)}
    for name in sorted(layers):
        h.update(name.encode())
        for tensor in (layers[name].weight, layers[name].bias):
            if tensor is not None:
                h.update(str(tuple(tensor.shape)).encode())
                h.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()
