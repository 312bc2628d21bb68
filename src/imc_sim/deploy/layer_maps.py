"""A checkpoint's sensitivity map and placement curve: load it and its dev set once
(:func:`imc_sim.deploy.run.load_scored`, as ``deploy`` does), deploy every analog layer, measure."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from imc_sim import data
from imc_sim.checkpoint import LoadedModel
from imc_sim.crossbar.mapping import Deployment, deploy_model
from imc_sim.deploy.placement import PlacementResult, placement_curve
from imc_sim.deploy.range_source import set_input_ranges
from imc_sim.deploy.run import load_scored
from imc_sim.deploy.sensitivity import MODES, SensitivityResult, measure_maps
from imc_sim.deploy.sweep import sweep_arguments
from imc_sim.devices.profile import DeviceProfile
from imc_sim.errors import ImcSimError
from imc_sim.report import report
from imc_sim.units import format_time


@dataclass
class Deployed:
    """A loaded checkpoint, its dev set (``examples`` of them), digital metric and full deployment."""

    path: str
    loaded: LoadedModel
    examples: int
    digital: float
    deployment: Deployment
    measure: Callable[[], float]


def deployed(path: str | os.PathLike[str], profile: DeviceProfile, source: data.DataSource,
             eval_limit: int | None, analog_head: bool, torch_device: torch.device | None = None) -> Deployed:
    scored = load_scored(path, source, eval_limit, torch_device)
    deployment = deploy_model(scored.loaded.model, profile, analog_head)
    set_input_ranges(deployment, scored.loaded, scored.batches, what=str(path))
    report(deployment.describe())
    return Deployed(str(path), scored.loaded, scored.examples, scored.digital, deployment, scored.measure)


def sensitivity_result(d: Deployed, profile: DeviceProfile, times: Sequence[float], seeds: int,
                       modes: Sequence[str], analog_head: bool, progress: bool) -> SensitivityResult:
    all_analog, maps = measure_maps(d.deployment, d.measure, list(range(seeds)), times, modes, progress)
    task = d.loaded.task
    return SensitivityResult(d.path, d.loaded.meta["method"], task.name, task.metric_name, profile.name,
                             profile.path, analog_head, d.examples, seeds, d.digital, all_analog, maps)


def _check_modes(modes: Sequence[str]) -> None:
    if isinstance(modes, str) or not modes:
        raise ImcSimError(f"modes is a non-empty list of {', '.join(MODES)}, not {modes!r}")
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise ImcSimError(f"unknown sensitivity mode {unknown[0]!r} (modes: {', '.join(MODES)})")


def checkpoint_sensitivity(path: str | os.PathLike[str], profile: DeviceProfile | str,
                           times: Sequence[str | float], seeds: int, modes: Sequence[str] = MODES,
                           source: data.DataSource | None = None,
                           eval_limit: int | None = None, analog_head: bool = False,
                           progress: bool = True, torch_device: torch.device | None = None,
                           data_dir: str | None = None) -> SensitivityResult:
    """The sensitivity maps of ``path`` on ``profile`` at ``times`` over seeds 0..seeds-1, with the
    model and chip on ``torch_device`` (default: the CPU), the dev set from ``source`` (GLUE's
    layout by default, at ``data_dir`` where given); arguments checked as
    :func:`~imc_sim.deploy.sweep.sweep_arguments` does, before any work."""
    profile, times, seeds = sweep_arguments(profile, times, seeds)
    _check_modes(modes)
    d = deployed(path, profile, source or data.DataSource(data_dir=data_dir), eval_limit, analog_head,
                 torch_device)
    return sensitivity_result(d, profile, times, seeds, modes, analog_head, progress)


def checkpoint_placement(path: str | os.PathLike[str], profile: DeviceProfile | str,
                         times: Sequence[str | float], seeds: int, step: int = 1,
                         source: data.DataSource | None = None, eval_limit: int | None = None,
                         analog_head: bool = False, progress: bool = True,
                         data_dir: str | None = None) -> PlacementResult:
    """The metric of ``path`` with the N costliest layers digital (``--keep-digital N``) for
    N = 0, step, 2 step, ... and every layer, ranked as ``deploy --keep-digital`` does (the dev set
    as :func:`checkpoint_sensitivity`'s)."""
    profile, times, seeds = sweep_arguments(profile, times, seeds)
    if isinstance(step, bool) or not isinstance(step, int) or step < 1:
        raise ImcSimError(f"the step in layers kept digital must be at least 1, got {step!r}")
    d = deployed(path, profile, source or data.DataSource(data_dir=data_dir), eval_limit, analog_head)
    ranking = sensitivity_result(d, profile, times[:1], seeds, ["one-analog"], analog_head, progress)
    n_layers = len(d.deployment.layers)
    counts = sorted({*range(0, n_layers + 1, step), n_layers})
    curve = placement_curve(d.deployment, ranking.ranking(), counts, d.measure, list(range(seeds)), times,
                            progress)
    return PlacementResult(ranking, format_time(times[0]), curve)
