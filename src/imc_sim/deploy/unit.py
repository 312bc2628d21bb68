"""Running one unit of a sweep: one checkpoint programmed on one chip (device, seed), drifted to
every time of the plan and evaluated at each.

:func:`simulate_chip` is the one place that calls the deployment engine; everything else here is
bookkeeping (threads, timing, the result record, fault injection for tests).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imc_sim.data import DataSource
from imc_sim.deploy.plan import Unit
from imc_sim.devices.profile import DeviceProfile

FAULT_ENV = "IMC_SIM_SWEEP_FAULT_ONCE"


@dataclass(frozen=True)
class ChipRun:
    """What the engine measured for one chip: the digital metric and one metric per time."""

    metric_name: str
    digital_metric: float
    metrics: tuple[float, ...]


@dataclass(frozen=True)
class UnitResult:
    """A finished unit: its key and plan entry, what was measured, and its own wall time (s)."""

    key: str
    entry: dict[str, Any]
    checkpoint_name: str
    method: str
    device_trained: str | None
    task: str
    times: tuple[float, ...]
    run: ChipRun
    unit_seconds: float


def simulate_chip(checkpoint: Path, profile: DeviceProfile, seed: int, times: list[float],
                  source: DataSource, eval_limit: int | None) -> ChipRun:
    """Program ``checkpoint`` on a ``profile`` chip with ``seed``, drift it through ``times``,
    scoring the dev set of ``source`` (accuracy or the like; perplexity for a language model).

    The same steps as :func:`imc_sim.deploy.run.deploy_checkpoint`, for one seed; static input
    ranges from the checkpoint or the dev set, never a training file
    (:mod:`imc_sim.deploy.range_source`).
    """
    from imc_sim.checkpoint import load_model
    from imc_sim.crossbar.mapping import deploy_model
    from imc_sim.deploy.range_source import set_input_ranges
    from imc_sim.deploy.run import dev_set
    from imc_sim.deploy.sweep import drift_sweep
    from imc_sim.evaluate import evaluate

    loaded = load_model(checkpoint)
    batches, _ = dev_set(loaded, source, eval_limit)
    digital = evaluate(loaded.model, batches, loaded.task)
    deployment = deploy_model(loaded.model, profile)
    set_input_ranges(deployment, loaded, batches, what=str(checkpoint), read_training=False)
    points = drift_sweep(deployment, lambda: evaluate(deployment.model, batches, loaded.task),
                         [seed], times, progress=False)
    return ChipRun(loaded.task.metric_name, digital, tuple(p.metrics[0] for p in points))


def inject_fault() -> None:
    """Tests only: with ``$IMC_SIM_SWEEP_FAULT_ONCE`` naming an absent file, create it and end the
    process at once, as a killed worker would (so exactly one unit dies, on its first attempt)."""
    marker = os.environ.get(FAULT_ENV)
    if marker:
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.close(fd)
        os._exit(1)


def run_unit(unit: Unit, checkpoint: Path, source: DataSource) -> UnitResult:
    """Run ``unit`` from local files: ``checkpoint`` and the dev data of ``source`` (the plan's, or
    the worker's copy of it). Its numbers do not depend on the thread count or the executor
    (the chip's randomness comes from its own streams)."""
    start = time.perf_counter()
    inject_fault()
    run = simulate_chip(checkpoint, unit.device.profile, unit.seed, list(unit.times), source,
                        unit.eval_limit)
    c = unit.checkpoint
    return UnitResult(unit.key, unit.entry(), c.name, c.method, c.device_trained, c.task.name, unit.times,
                      run, time.perf_counter() - start)
