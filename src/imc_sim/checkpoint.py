"""``model.pt``: a self-describing fine-tuning checkpoint holding only what was trained.

Layout (a plain dict, saved with ``torch.save`` and read with ``weights_only=True``, so loading
never unpickles arbitrary objects)::

    format: "imc-sim-checkpoint"   version: 1
    base_model: {kind, name}        base_fingerprint: {model_type, hidden_size, num_layers, weight_sum}
    task, labels, method, config, seed, metrics, train_args
    state: {parameter name: tensor}   # adapter and task-head tensors only (all, for 'full')
    input_ranges: {tile_rows, tile_split, input_percentile, layers: {layer name: tensor}}
                                      # optional: static input ranges of device-aware training
                                      # (imc_sim.crossbar.input_ranges.StoredRanges)

The file is written atomically, with every tensor on the CPU; it is read with
``map_location="cpu"`` and copied into the model's parameters on their device, so loading never
needs the device the model was trained on. Its size follows the trainable parameters: a GRASP K=32 file on
MiniLM is kilobytes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from imc_sim.atomic import write_atomic
from imc_sim.backbones import check_fingerprint, load_backbone, model_reference
from imc_sim.errors import ImcSimError
from imc_sim.peft import get_method
from imc_sim.tasks import TaskSpec, task_from_checkpoint

FORMAT = "imc-sim-checkpoint"
VERSION = 1
REQUIRED = ("base_model", "base_fingerprint", "task", "method", "config", "state")
FIELD_TYPES: dict[str, type] = {
    "base_model": dict, "base_fingerprint": dict, "task": str, "method": str, "config": dict, "state": dict,
    "labels": list, "seed": int, "metrics": dict, "train_args": dict, "task_spec": dict, "input_ranges": dict}
"""The type of each top-level entry (the optional ones where present)."""
NESTED_TYPES: dict[str, dict[str, type]] = {
    "base_model": {"kind": str, "name": str},
    "base_fingerprint": {"model_type": str, "hidden_size": int, "num_layers": int, "weight_sum": float}}
"""The type of each entry of the checkpoint's model reference and fingerprint, where present."""


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every trainable parameter by name (adapter and head), detached copies on the CPU: a
    checkpoint never names the device it was trained on."""
    return {n: p.detach().to("cpu", copy=True) for n, p in model.named_parameters()
            if p.requires_grad}


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> None:
    """Write ``payload`` (see the module docstring) to ``path`` atomically."""
    data = {"format": FORMAT, "version": VERSION, **payload}
    write_atomic(path, lambda tmp: torch.save(data, tmp))


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load and validate a checkpoint dict; one-line error for anything that is not ours."""
    if not os.path.isfile(path):
        raise ImcSimError(f"no checkpoint file {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a corrupt file fails in many ways (zip, pickle, EOF, OSError)
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ImcSimError(f"{path} is not a readable imc-sim checkpoint ({reason[:160]})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ImcSimError(f"{path} is not an imc-sim checkpoint")
    if data.get("version") != VERSION:
        raise ImcSimError(f"{path}: checkpoint version {data.get('version')} is not {VERSION}")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise ImcSimError(f"{path}: checkpoint lacks {', '.join(missing)}")
    _check_types(path, data)
    return data


def _check_types(path: str | os.PathLike[str], data: dict[str, Any]) -> None:
    """One-line error for an entry of the wrong type (a file edited by hand, or another writer's)
    or a trained tensor holding NaN or inf."""
    def check(name: str, value: Any, expected: type) -> None:
        accepted = (int, float) if expected is float else expected  # a sum may be a whole number
        if not isinstance(value, accepted) or isinstance(value, bool):
            raise ImcSimError(
                f"{path}: checkpoint entry {name} is {type(value).__name__}, not {expected.__name__}")
    for key, expected in FIELD_TYPES.items():
        if key in data:
            check(key, data[key], expected)
    for key, fields in NESTED_TYPES.items():
        for field, expected in fields.items():
            if field in data[key]:  # a missing one is a different base (backbones.same_base)
                check(f"{key}.{field}", data[key][field], expected)
    for name, value in data["state"].items():
        check(f"state[{name!r}]", value, torch.Tensor)
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise ImcSimError(f"{path}: checkpoint entry state[{name!r}] holds NaN or infinite values")


def load_state(model: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """Copy ``state`` into the trainable parameters of ``model`` wherever they live (the copy
    moves each tensor to its parameter's device and dtype); names and shapes must agree, and
    where they do not, no parameter is changed."""
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if set(params) != set(state):
        extra = sorted(set(state) - set(params))[:2]
        lacking = sorted(set(params) - set(state))[:2]
        raise ImcSimError(
            f"{what}: adapter does not fit the model (unexpected {extra}, missing {lacking})"
        )
    for name, param in params.items():
        if param.shape != state[name].shape:
            raise ImcSimError(
                f"{what}: {name} has shape {tuple(state[name].shape)}, model wants {tuple(param.shape)}"
            )
    with torch.no_grad():
        for name, param in params.items():
            param.copy_(state[name])


@dataclass
class LoadedModel:
    """A checkpoint rebuilt on its base model."""

    model: nn.Module
    tokenizer: Any
    task: TaskSpec
    meta: dict[str, Any]


def load_adapted(path: str | os.PathLike[str], model_override: str | None = None) -> LoadedModel:
    """Rebuild the base model with the checkpoint's adapter attached (not merged)."""
    data = read_checkpoint(path)
    task = task_from_checkpoint(data)
    ref = model_reference(model_override) if model_override else data["base_model"]
    backbone = load_backbone(ref, task)
    check_fingerprint(data["base_fingerprint"], backbone.model, str(path))
    method = get_method(data["method"])
    model = method.attach(backbone.model, data["config"])
    load_state(model, data["state"], str(path))
    model.eval()
    meta = {k: v for k, v in data.items() if k != "state"}
    return LoadedModel(model, backbone.tokenizer, task, meta)


def load_model(path: str | os.PathLike[str], model_override: str | None = None) -> LoadedModel:
    """Rebuild the checkpoint and merge it: a plain Hugging Face model in eval mode."""
    loaded = load_adapted(path, model_override)
    loaded.model = get_method(loaded.meta["method"]).merge(loaded.model).eval()
    return loaded
