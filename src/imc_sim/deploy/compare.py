"""Several checkpoints on one device, the same chips (noise seeds) for each: one table, one plot.

The result is a :class:`~imc_sim.deploy.results.CompareResult` (its JSON is shared by
``imc-sim compare`` and the experiment scripts; see :mod:`imc_sim.deploy.results`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from imc_sim.backbones import same_base
from imc_sim.checkpoint import read_checkpoint
from imc_sim.data import DataSource
from imc_sim.deploy.digest import check_path_list, first_repeat
from imc_sim.deploy.results import CompareResult
from imc_sim.deploy.run import deploy_checkpoint
from imc_sim.deploy.sweep import sweep_arguments
from imc_sim.devices.profile import DeviceProfile
from imc_sim.errors import ImcSimError
from imc_sim.metrics import metric_format
from imc_sim.table import format_table


def check_comparable(paths: list[str | os.PathLike[str]]) -> list[dict[str, Any]]:
    """Read every checkpoint's metadata; refuse mixes of tasks or base models (one line)."""
    if len(paths) < 1:
        raise ImcSimError("compare needs at least one checkpoint")
    metas = [read_checkpoint(p) for p in paths]
    first = metas[0]
    for path, meta in zip(paths[1:], metas[1:], strict=True):
        if meta["task"] != first["task"]:
            raise ImcSimError(f"checkpoints trained on different tasks: {paths[0]} is "
                              f"{first['task']}, {path} is {meta['task']}")
        if not same_base(meta["base_fingerprint"], first["base_fingerprint"]):
            raise ImcSimError(f"checkpoints on different base models: {paths[0]} and {path}")
    return metas


def compare_checkpoints(paths: list[str | os.PathLike[str]], profile: DeviceProfile | str,
                        times: Sequence[str | float], seeds: int, data_dir: str | None = None,
                        eval_limit: int | None = None,
                        progress: bool = True, source: DataSource | None = None,
                        torch_device: torch.device | None = None) -> CompareResult:
    """Deploy every checkpoint on ``profile`` with seeds 0..seeds-1 (the same chips for each); a
    curve is named after its file (``grasp-k32.pt``: 'grasp-k32'). Arguments as
    :func:`~imc_sim.deploy.run.deploy_checkpoint`'s."""
    profile, times, seeds = sweep_arguments(profile, times, seeds)
    check_path_list(paths)
    check_comparable(paths)
    repeat = first_repeat(paths)
    if repeat:
        raise ImcSimError(f"{repeat[1]} is the same checkpoint as {repeat[0]}; give each once")
    results = [deploy_checkpoint(path, profile, times, seeds, data_dir, eval_limit, progress=progress,
                                 name=Path(path).stem, source=source, torch_device=torch_device)
               for path in paths]
    first = results[0]
    return CompareResult(profile.name, seeds, first.task, first.metric_name,
                         tuple(r.curve for r in results))


def format_compare_table(result: CompareResult, markdown: bool = False) -> str:
    """Rows: checkpoint; columns: digital and each drift time as mean +- std (in the metric's
    format: percent, or a plain number for perplexity)."""
    fmt = metric_format(result.metric_name)
    labels = [p.label for p in result.checkpoints[0].points]
    rows = [[c.name, c.method, c.device_trained or "-", fmt(c.digital_metric),
             *(fmt.spread(p.mean, p.std, len(p.metrics)) for p in c.points)]
            for c in result.checkpoints]
    return format_table(["checkpoint", "method", "trained on", "digital", *labels], rows, markdown)
