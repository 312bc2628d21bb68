"""The data static input ranges are calibrated on: the first examples of a run's training split.

Device-aware training on a static profile calibrates its layers' ranges on :func:`training_batches`
(and the checkpoint keeps them); a deployment whose checkpoint holds no ranges that fit its
profile calibrates on the same batches of the training data the checkpoint records
(:func:`recorded_training_source`), read again, and only where that names no file that is here,
on the first batches of the dev set. Every source takes :data:`CALIBRATION_BATCHES` batches in
file order (no shuffling, no labels used), so the ranges are the same on every run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from imc_sim import data
from imc_sim.data.corpus import block_batches, check_lm_source, make_blocks, read_corpus
from imc_sim.data.glue import resolve_data_dir
from imc_sim.lm import EVAL_BATCH
from imc_sim.tasks import TaskSpec

CALIBRATION_BATCHES = 4
"""Batches a static range is the mean over: of 128 examples (of EVAL_BATCH blocks for ``lm``)."""
BATCH = 128


def training_batches(source: data.DataSource, task: TaskSpec, tokenizer: Any, max_length: int,
                     limit: int | None = None) -> list[dict[str, torch.Tensor]]:
    """The first :data:`CALIBRATION_BATCHES` batches of ``source``'s training split (of its
    first ``limit`` examples, or lines for ``lm``, as training read it), tokenized at
    ``max_length``, on the CPU."""
    if task.is_lm:
        check_lm_source(source, training=True)
        blocks = make_blocks(read_corpus(source.train_file, limit), tokenizer, max_length)  # type: ignore[arg-type]
        return block_batches(blocks, EVAL_BATCH)[:CALIBRATION_BATCHES]
    first = CALIBRATION_BATCHES * BATCH if limit is None else min(limit, CALIBRATION_BATCHES * BATCH)
    _, examples = data.load_train(source, task.name, first)
    return data.eval_batches(data.encode(examples, tokenizer, max_length), BATCH)


def recorded_training_source(meta: dict[str, Any], task: TaskSpec) -> tuple[data.DataSource, str] | None:
    """The training data a checkpoint's ``train_args`` record and a name for it, where they name
    a file that is here: own ``--train-file``, or GLUE's ``train.tsv`` under a recorded
    ``--data-dir`` (or ``$IMC_SIM_DATA``'s folder, recorded since session 31); None for a hub
    dataset, an older checkpoint that found GLUE through ``$IMC_SIM_DATA`` (no path recorded) or a
    file that is not here."""
    args = meta.get("train_args", {})
    raw = args.get("data_source")
    if raw:
        source = data.DataSource(**{**raw, "text_columns": tuple(raw.get("text_columns") or ())})
    else:
        source = data.DataSource(data_dir=args.get("data_dir"))
    if source.kind == "files":
        path = Path(source.train_file) if source.train_file else None
    elif source.kind == "glue" and source.data_dir and not task.custom and not task.is_lm:
        path = resolve_data_dir(source.data_dir) / task.folder / "train.tsv"  # type: ignore[operator]
    else:
        return None
    return (source, str(path)) if path is not None and path.is_file() else None
