"""Deploy one checkpoint on a device: digital reference, mapping, and the seeds x times sweep."""

from __future__ import annotations

import os
from typing import Any

from imc_sim import data
from imc_sim.checkpoint import load_model
from imc_sim.crossbar.mapping import deploy_model
from imc_sim.deploy.sweep import drift_sweep
from imc_sim.devices.profile import DeviceProfile
from imc_sim.evaluate import evaluate
from imc_sim.table import format_table


def deploy_checkpoint(
    path: str | os.PathLike[str],
    profile: DeviceProfile,
    times: list[float],
    seeds: int,
    data_dir: str | None = None,
    eval_limit: int | None = None,
    analog_head: bool = False,
    progress: bool = True,
    source: data.DataSource | None = None,
) -> dict[str, Any]:
    """Evaluate ``path`` digitally, then on ``profile`` at every time for seeds 0..seeds-1.

    The dev set is tokenized and batched once; each seed programs the chip once and drifts that
    state through ``times`` (see :mod:`imc_sim.deploy.sweep`). ``source`` (own files or a hub
    dataset) replaces GLUE's layout at ``data_dir``.
    """
    loaded = load_model(path)
    task = loaded.task
    max_length = loaded.meta.get("train_args", {}).get("max_length", 64)
    dev = data.load_dev(source or data.DataSource(data_dir=data_dir), task, eval_limit)
    batches = data.eval_batches(data.encode(dev, loaded.tokenizer, max_length))
    digital = evaluate(loaded.model, batches, task)
    deployment = deploy_model(loaded.model, profile, analog_head)
    print(deployment.describe())
    points = drift_sweep(deployment, lambda: evaluate(deployment.model, batches, task),
                         list(range(seeds)), times, progress, desc=f"{profile.name} seeds x times")
    return {
        "checkpoint": str(path),
        "method": loaded.meta["method"],
        "task": task.name,
        "metric_name": task.metric_name,
        "device": profile.name,
        "device_file": profile.path,
        "analog_head": analog_head,
        "dev_examples": len(dev.labels),
        "seeds": seeds,
        "digital_metric": digital,
        "mapping": deployment.summary(),
        "times": points,
    }


def format_deploy_table(result: dict[str, Any]) -> str:
    """Drift time, mean +- std over seeds, min, and the digital metric (percent)."""
    rows = [[p["label"], f"{100 * p['mean']:.2f} +- {100 * p['std']:.2f}", f"{100 * p['min']:.2f}",
             f"{100 * result['digital_metric']:.2f}"] for p in result["times"]]
    name = result["metric_name"]
    return format_table(["drift", f"{name} (mean +- std, {result['seeds']} seeds)", "min", "digital"], rows)
