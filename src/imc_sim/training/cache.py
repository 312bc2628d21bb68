"""Cached training runs: a checkpoint file is reused only for the run that wrote it.

A cached checkpoint counts as a run of some :class:`TrainArgs` when the training arguments it
records (``train_args``) equal those of the run, compared as what they mean rather than as typed:
a data folder or model folder by where it resolves to (``../data`` and ``/work/data`` are one
folder; no ``--data-dir`` is ``$IMC_SIM_DATA``; ``--model minilm`` is no ``--model``). Fields
that do not change the trained weights (:data:`NOT_TRAINING`) are not compared. The method's
options live in the checkpoint's config, not in ``train_args``: the config they build is compared
with the checkpoint's.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from imc_sim.backbones import PACKAGED
from imc_sim.checkpoint import read_checkpoint, save_checkpoint
from imc_sim.data.glue import resolve_data_dir
from imc_sim.errors import ImcSimError
from imc_sim.peft import get_method
from imc_sim.peft.stochgrasp.config import auto_sigma_factor
from imc_sim.training.loop import DEFAULT_LR, TrainArgs, recorded_args, train

NOT_TRAINING = ("eval_limit", "torch_device")
"""Recorded fields that change what is reported or where it ran, not the trained weights."""
PACKAGED_NAMES = ("minilm", PACKAGED)
"""``--model`` values that name the packaged MiniLM, as no ``--model`` does."""
DATA_FOLDERS = ("data_dir",)
"""Fields whose None means ``$IMC_SIM_DATA`` (:func:`imc_sim.data.glue.resolve_data_dir`)."""


def _meaning(value: Any, key: str = "") -> Any:
    """``value`` with every path that exists resolved (a dict or list entry by entry)."""
    if isinstance(value, dict):
        return {k: _meaning(v, k) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_meaning(v) for v in value]
    if key in DATA_FOLDERS:
        folder = resolve_data_dir(value)
        value = None if folder is None else str(folder)
    if key == "model" and value in PACKAGED_NAMES:
        value = None
    if isinstance(value, str) and os.path.exists(value):
        return os.path.realpath(value)
    return value


_MISSING = object()


def _with_rate(fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` with no ``lr`` (None) as its method's default rate, which is what trained."""
    if fields.get("lr", _MISSING) is None and fields.get("method") in DEFAULT_LR:
        return {**fields, "lr": DEFAULT_LR[fields["method"]]}
    return fields


def _shown(value: Any) -> str:
    return "not recorded" if value is _MISSING else repr(value)


def differences(recorded: dict[str, Any], args: TrainArgs) -> list[str]:
    """``field: <recorded> in the checkpoint, <args'> asked for`` for every training field that
    differs (:data:`NOT_TRAINING` left out); empty when the checkpoint is a run of ``args``."""
    wanted, held = _with_rate(_meaning(recorded_args(args))), _with_rate(_meaning(recorded))
    return [f"{key}: {_shown(held.get(key, _MISSING))} in the checkpoint, {wanted[key]!r} asked for"
            for key in wanted if key not in NOT_TRAINING and held.get(key, _MISSING) != wanted[key]]


def config_differences(recorded: Any, args: TrainArgs) -> list[str]:
    """``method option key: <recorded> in the checkpoint, <args'> asked for`` for every entry of the
    method's config that ``args``' method options build otherwise (the seed is a training field; a
    ``sigma_target`` of ``auto`` is a number only once the model is loaded, and is not compared)."""
    options = {**args.method_options, "seed": args.seed}
    wanted = get_method(args.method).make_config(options)
    held = recorded if isinstance(recorded, dict) else {}
    skipped = {"seed"} | ({"sigma_target"} if auto_sigma_factor(options.get("sigma_target")) is not None
                          else set())
    return [f"method option {key}: {_shown(held.get(key, _MISSING))} in the checkpoint, {value!r} asked for"
            for key, value in wanted.items()
            if key not in skipped and _listed(held.get(key, _MISSING)) != _listed(value)]


def _listed(value: Any) -> Any:
    """``value`` with its tuples as lists (a checkpoint may hold either)."""
    return [_listed(v) for v in value] if isinstance(value, list | tuple) else value


def check_cached(path: Path, args: TrainArgs) -> None:
    """One-line error unless the checkpoint at ``path`` (where there is one) was trained with ``args``
    (its training fields and its method's config)."""
    if not path.exists():
        return
    checkpoint = read_checkpoint(path)
    changed = differences(checkpoint.get("train_args", {}), args)
    if not any(c.startswith("method:") for c in changed):
        changed += config_differences(checkpoint.get("config"), args)
    if changed:
        raise ImcSimError(f"the cached checkpoint {path} was trained with other settings "
                          f"({'; '.join(changed)}); retrain it (--fresh, where offered) or move it away")


def check_all_cached(runs: Sequence[tuple[Path, TrainArgs]], fresh: bool) -> None:
    """:func:`check_cached` for every run before any training starts (nothing, with ``fresh``)."""
    if not fresh:
        for path, args in runs:
            check_cached(path, args)


def train_cached(path: str | os.PathLike[str], args: TrainArgs, fresh: bool = False,
                 progress: bool = True) -> Path:
    """Train ``args`` and save the checkpoint at ``path`` once; later calls reuse the file, when it
    is a run of ``args`` (else a one-line error). ``progress``: the training's progress bar."""
    return train_all_cached([(Path(path), args)], fresh, progress)[0]


def train_all_cached(runs: Sequence[tuple[Path, TrainArgs]], fresh: bool = False,
                     progress: bool = True) -> list[Path]:
    """Every ``(path, args)`` trained and saved where its checkpoint is not there yet (every one
    with ``fresh``), each cached one checked first (:func:`check_all_cached`, one read each)."""
    check_all_cached(runs, fresh)
    for path, args in runs:
        if fresh or not path.exists():
            save_checkpoint(path, train(args, progress=progress).payload)
    return [path for path, _ in runs]
