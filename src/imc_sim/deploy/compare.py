"""Several checkpoints on one device, the same chips (noise seeds) for each: one table, one plot.

JSON schema (shared by ``imc-sim compare`` and the experiment scripts)::

    {"device", "seeds", "task", "metric_name",
     "checkpoints": [{"name", "path", "method", "device_trained", "digital_metric",
                      "times": [{"t_seconds", "label", "metrics", "mean", "std", "min"}]}]}
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from imc_sim.checkpoint import read_checkpoint
from imc_sim.data import DataSource
from imc_sim.deploy.run import deploy_checkpoint
from imc_sim.devices.profile import DeviceProfile
from imc_sim.errors import ImcSimError
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
        if meta["base_fingerprint"] != first["base_fingerprint"]:
            raise ImcSimError(f"checkpoints on different base models: {paths[0]} and {path}")
    return metas


def device_trained(meta: dict[str, Any]) -> str | None:
    """'pcm @ 1d' for a checkpoint trained device-aware (', after 50% digital' with a warm-up),
    else None."""
    args = meta.get("train_args", {})
    if not args.get("device"):
        return None
    warmup = args.get("device_warmup") or 0.0
    return f"{args['device']} @ {args.get('drift') or '1d'}" + (
        f", after {100 * warmup:.0f}% digital" if warmup else "")


def compare_checkpoints(paths: list[str | os.PathLike[str]], profile: DeviceProfile, times: list[float],
                        seeds: int, data_dir: str | None = None, eval_limit: int | None = None,
                        progress: bool = True, source: DataSource | None = None) -> dict[str, Any]:
    """Deploy every checkpoint on ``profile`` with seeds 0..seeds-1 (the same chips for each)."""
    metas = check_comparable(paths)
    entries = []
    for path, meta in zip(paths, metas, strict=True):
        result = deploy_checkpoint(path, profile, times, seeds, data_dir, eval_limit, progress=progress,
                                   source=source)
        entries.append({
            "name": Path(path).stem, "path": str(path), "method": meta["method"],
            "device_trained": device_trained(meta), "digital_metric": result["digital_metric"],
            "times": result["times"],
        })
        metric_name = result["metric_name"]
    return {"device": profile.name, "seeds": seeds, "task": metas[0]["task"],
            "metric_name": metric_name, "checkpoints": entries}


def format_compare_table(result: dict[str, Any], markdown: bool = False) -> str:
    """Rows: checkpoint; columns: digital and each drift time as mean +- std (percent)."""
    labels = [p["label"] for p in result["checkpoints"][0]["times"]]
    rows = [[c["name"], c["method"], c["device_trained"] or "-", f"{100 * c['digital_metric']:.2f}",
             *(f"{100 * p['mean']:.2f} +- {100 * p['std']:.2f}" for p in c["times"])]
            for c in result["checkpoints"]]
    return format_table(["checkpoint", "method", "trained on", "digital", *labels], rows, markdown)
