"""Deploy one checkpoint on a device: digital reference, mapping, and the seeds x times sweep."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from imc_sim import data, lm
from imc_sim.checkpoint import LoadedModel, load_model
from imc_sim.crossbar.mapping import Deployment, deploy_model
from imc_sim.data.corpus import check_labelled
from imc_sim.data.glue import check_limit
from imc_sim.deploy.periphery import load_periphery
from imc_sim.deploy.placement import Placement, choose_digital
from imc_sim.deploy.range_source import check_source, set_input_ranges
from imc_sim.deploy.results import CheckpointCurve, DeployResult, MappingSummary
from imc_sim.deploy.sweep import drift_sweep, sweep_arguments
from imc_sim.devices.profile import DeviceProfile
from imc_sim.evaluate import evaluate
from imc_sim.metrics import metric_format
from imc_sim.report import report
from imc_sim.table import format_table
from imc_sim.torch_device import resolve_torch_device, to_device


def dev_set(loaded: LoadedModel, source: data.DataSource, eval_limit: int | None,
            device: torch.device | None = None) -> tuple[list[dict], int]:
    """The dev set of ``loaded``'s task from ``source``, tokenized at its training max length and
    batched once, on ``device`` (default: the model's); returns the batches and the number of
    examples (held-out tokens for ``lm``)."""
    max_length = loaded.meta.get("train_args", {}).get("max_length", 64)
    device = device or next(loaded.model.parameters()).device
    if loaded.task.is_lm:
        batches, size = lm.dev_batches(source, loaded.tokenizer, max_length, eval_limit)
    else:
        check_labelled(source, loaded.task)
        dev = data.load_dev(source, loaded.task, eval_limit)
        batches, size = data.eval_batches(data.encode(dev, loaded.tokenizer, max_length)), len(dev.labels)
    return [to_device(b, device) for b in batches], size


@dataclass
class Scored:
    """A loaded checkpoint with its dev set batched on the model's device (``examples`` of them)
    and its digital metric: what every deployment of it starts from."""

    loaded: LoadedModel
    batches: list[dict]
    examples: int
    digital: float

    def measure(self) -> float:
        """The metric of the model as it is now (digital, or on its tiles once deployed)."""
        return evaluate(self.loaded.model, self.batches, self.loaded.task)


def load_scored(path: str | os.PathLike[str], source: data.DataSource, eval_limit: int | None,
                torch_device: torch.device | None = None, grasp_periphery: bool = False) -> Scored:
    """Load ``path`` (merged, or with GRASP kept for the periphery), move it to ``torch_device``,
    batch its dev set from ``source`` and score it digitally."""
    loaded = load_periphery(path) if grasp_periphery else load_model(path)
    if torch_device is not None:
        loaded.model.to(torch_device)
    batches, examples = dev_set(loaded, source, eval_limit)
    return Scored(loaded, batches, examples, evaluate(loaded.model, batches, loaded.task))


def device_trained(meta: dict[str, Any]) -> str | None:
    """'pcm @ 1d' for a checkpoint trained device-aware (', after 50% digital' with a warm-up,
    ', layers PATTERNS' on a subset), else None."""
    args = meta.get("train_args", {})
    if not args.get("device"):
        return None
    warmup = args.get("device_warmup") or 0.0
    layers = args.get("device_layers")
    return f"{args['device']} @ {args.get('drift') or '1d'}" + (
        f", after {100 * warmup:.0f}% digital" if warmup else "") + (f", layers {layers}" if layers else "")


def deploy_checkpoint(
    path: str | os.PathLike[str],
    profile: DeviceProfile | str,
    times: Sequence[str | float],
    seeds: int,
    data_dir: str | None = None,
    eval_limit: int | None = None,
    analog_head: bool = False,
    progress: bool = True,
    name: str | None = None,
    source: data.DataSource | None = None,
    placement: Placement | None = None,
    torch_device: torch.device | str | None = None,
    input_ranges: str = "auto",
    grasp_periphery: bool = False,
) -> DeployResult:
    """Evaluate ``path`` digitally, then on ``profile`` (or a profile's name or YAML path) at every
    drift time (seconds, or text such as ``'1d'``) for seeds 0..seeds-1.

    The dev set is tokenized and batched once; each seed programs the chip once and drifts that
    state through ``times`` (see :mod:`imc_sim.deploy.sweep`). ``name`` labels the curve
    (default 'METHOD (PATH)'); ``source`` (own files or a hub dataset)
    replaces GLUE's layout at ``data_dir``; ``placement`` keeps layers digital;
    ``torch_device`` is where the model, the dev set and the chip live (default: the CPU; text as
    ``--torch-device`` takes it, ``auto`` included);
    ``input_ranges`` where static input ranges come from (:mod:`imc_sim.deploy.range_source`,
    the same for every seed).
    ``grasp_periphery`` programs the frozen base and keeps the GRASP adapter digital, before each
    tile's DAC (:mod:`imc_sim.deploy.periphery`), instead of merging it into the weights.
    """
    profile, times, seeds = sweep_arguments(profile, times, seeds)
    check_source(input_ranges)
    check_limit(eval_limit)
    if isinstance(torch_device, str):
        torch_device = resolve_torch_device(torch_device)
    scored = load_scored(path, source or data.DataSource(data_dir=data_dir), eval_limit, torch_device,
                         grasp_periphery)
    loaded, task = scored.loaded, scored.loaded.task

    def calibrate(deployment: Deployment) -> None:
        set_input_ranges(deployment, loaded, scored.batches, input_ranges, str(path))

    kept = choose_digital(loaded.model, profile, placement, analog_head, scored.measure,
                          list(range(seeds)), times[0], calibrate, progress,
                          metric_format(task.metric_name).higher_is_better) if placement else []
    deployment = deploy_model(loaded.model, profile, analog_head, kept)
    calibrate(deployment)
    report(deployment.describe())
    points = drift_sweep(deployment, scored.measure, list(range(seeds)), times, progress,
                         desc=f"{profile.name} seeds x times")
    method = loaded.meta["method"]
    label = f"{method} periphery" if grasp_periphery else method
    curve = CheckpointCurve(name or f"{label} ({path})", str(path), method, device_trained(loaded.meta),
                            scored.digital, tuple(points), MappingSummary.from_json(deployment.summary()))
    return DeployResult(curve, task.name, task.metric_name, profile.name, profile.path, analog_head,
                        scored.examples, seeds)


def format_deploy_table(result: DeployResult) -> str:
    """Drift time, mean +- std over seeds, the worst seed (min, or max for perplexity), and the
    digital metric (as :func:`imc_sim.metrics.metric_format` shows it)."""
    fmt = metric_format(result.metric_name)
    digital = fmt(result.curve.digital_metric)
    rows = [[p.label, fmt.spread(p.mean, p.std, len(p.metrics)), fmt(fmt.worst(p.metrics)), digital]
            for p in result.curve.points]
    return format_table(["drift", f"{result.metric_name} (mean +- std, {result.seeds} seeds)",
                         "min" if fmt.higher_is_better else "max",
                         "digital"], rows)
