"""One chip, several tasks: the shared frozen base programmed once per seed, each task's GRASP
adapter (and task head) switched in digitally at every drift time, without reprogramming.

Every checkpoint must be fine-tuned from the same base weights (compared by
:func:`~imc_sim.deploy.periphery.base_digest`). Each task keeps its own model around the same
tiles (:func:`~imc_sim.crossbar.mapping.share_tiles`): embeddings, norms and the task head stay
digital, the adapter runs before each tile's DAC. A task's static input ranges are part of its
digital periphery settings (calibrated on its own dev inputs, with its transform in place) and are
switched with it. Before each task is read out the tiles' per-read noise restarts, so a task's
numbers are those of ``imc-sim deploy --grasp-periphery`` of its checkpoint alone on the same seed
(``--input-ranges dev`` where the profile's ranges are static: deploy's default calibrates them on
the training file instead).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from imc_sim import data
from imc_sim.calibration import CALIBRATION_BATCHES
from imc_sim.checkpoint import LoadedModel
from imc_sim.crossbar.mapping import Deployment, deploy_model, share_tiles
from imc_sim.data.glue import DATA_ENV, resolve_data_dir
from imc_sim.data.hub import import_datasets
from imc_sim.deploy.chip import Chip
from imc_sim.deploy.digest import check_path_list, first_repeat
from imc_sim.deploy.periphery import base_digest, load_periphery
from imc_sim.deploy.results import CheckpointCurve, MappingSummary, MultiTaskResult, TaskCurve, TimePoint
from imc_sim.deploy.run import dev_set, device_trained
from imc_sim.deploy.sweep import sweep_arguments
from imc_sim.devices.profile import DeviceProfile
from imc_sim.errors import ImcSimError
from imc_sim.evaluate import evaluate
from imc_sim.metrics import metric_format
from imc_sim.report import report
from imc_sim.table import format_table


@dataclass
class TaskView:
    """One task on the shared chip: its model (around the chip's tiles), dev set, digital metric,
    and its input ranges per analog layer (None: dynamic)."""

    path: str
    loaded: LoadedModel
    batches: list[dict]
    dev_examples: int
    digital: float
    deployment: Deployment
    ranges: dict[str, torch.Tensor | None] = dataclasses.field(default_factory=dict)

    def calibrate(self) -> None:
        """This task's static input ranges, measured with its adapter in place."""
        self.deployment.calibrate(self.batches[:CALIBRATION_BATCHES], "dev set")
        self.ranges = {n: layer.input_ranges for n, layer in self.deployment.layers.items()}

    def measure(self) -> float:
        """Switch this task's periphery settings in and evaluate it on the chip as it is now."""
        for name, layer in self.deployment.layers.items():
            layer.input_ranges = self.ranges[name]
        self.deployment.restart_reads()
        return evaluate(self.loaded.model, self.batches, self.loaded.task)


def check_same_base(paths: Sequence[str | os.PathLike[str]], models: Sequence[LoadedModel]) -> str:
    """The shared base digest, or a one-line error naming the first checkpoint whose base differs."""
    digests = [base_digest(m.model) for m in models]
    for path, digest in zip(paths[1:], digests[1:], strict=True):
        if digest != digests[0]:
            raise ImcSimError(f"{path} and {paths[0]} were fine-tuned from different base weights; "
                              "one chip holds one base model")
    return digests[0]


def _check_glue_data(source: data.DataSource) -> None:
    """One line if there is no GLUE folder (``--data-dir``, ``$IMC_SIM_DATA``) and no ``datasets``
    package to fetch GLUE from the hub: multitask has no own-file options to suggest."""
    if resolve_data_dir(source.data_dir) is None:
        import_datasets("multitask reads GLUE dev sets: pass --data-dir DIR (GLUE layout, DIR/SST-2/dev.tsv, "
                        f"...) or set ${DATA_ENV}; or `pip install datasets` to download GLUE from the hub")


def multitask_sweep(paths: Sequence[str | os.PathLike[str]], profile: DeviceProfile | str,
                    times: Sequence[str | float], seeds: int, source: data.DataSource | None = None,
                    eval_limit: int | None = None,
                    progress: bool = True, torch_device: torch.device | None = None,
                    data_dir: str | None = None) -> MultiTaskResult:
    """Program the shared base once per seed 0..seeds-1, drift it through ``times`` and evaluate
    every checkpoint's task on its own dev set at each time (``source``: GLUE's layout by default,
    at ``data_dir`` where given)."""
    profile, times, seeds = sweep_arguments(profile, times, seeds)
    check_path_list(paths)
    if not paths:
        raise ImcSimError("multitask needs at least one checkpoint")
    repeat = first_repeat(paths)
    if repeat:
        raise ImcSimError(f"{repeat[1]} is the same checkpoint as {repeat[0]}; give each task once")
    source = source or data.DataSource(data_dir=data_dir)
    _check_glue_data(source)
    loaded = [load_periphery(p, torch_device) for p in paths]
    digest = check_same_base(paths, loaded)
    dev_sets = [dev_set(task, source, eval_limit) for task in loaded]
    digital = [evaluate(task.model, batches, task.task) for task, (batches, _) in zip(loaded, dev_sets,
                                                                                     strict=True)]
    chip = deploy_model(loaded[0].model, profile)
    views = []
    for n, (path, task, (batches, size)) in enumerate(zip(paths, loaded, dev_sets, strict=True)):
        if n:
            share_tiles(chip, task.model)
        on_chip = dataclasses.replace(chip, model=task.model)  # the same tiles, this task's model
        view = TaskView(str(path), task, batches, size, digital[n], on_chip)
        view.calibrate()
        views.append(view)
    if views[0].deployment.input_ranges is not None:
        chip.input_ranges = "tasks' dev sets"  # each task's own, switched in with its adapter
    report(chip.describe() + f"; {len(views)} tasks share it")
    per_task: list[list[list[float]]] = [[[] for _ in times] for _ in views]
    with tqdm(total=seeds * len(times) * len(views), desc=f"{profile.name} seeds x times x tasks",
              disable=not progress) as bar:
        for seed in range(seeds):
            programmed = Chip(chip, seed)
            programmed.program()
            for k, t in enumerate(times):
                programmed.drift_to(t)
                for view, metrics in zip(views, per_task, strict=True):
                    metrics[k].append(view.measure())
                    bar.update()
    mapping = MappingSummary.from_json(chip.summary())
    curves = tuple(_task_curve(view, times, metrics, mapping) for view, metrics in zip(views, per_task,
                                                                                       strict=True))
    return MultiTaskResult(profile.name, profile.path, seeds, digest, mapping, curves)


def _task_curve(view: TaskView, times: list[float], metrics: list[list[float]],
                mapping: MappingSummary) -> TaskCurve:
    task, meta = view.loaded.task, view.loaded.meta
    points = tuple(TimePoint.of(t, m) for t, m in zip(times, metrics, strict=True))
    curve = CheckpointCurve(f"{task.name}: {Path(view.path).stem}", view.path, meta["method"],
                            device_trained(meta), view.digital, points, mapping)
    return TaskCurve(task.name, task.metric_name, view.dev_examples, curve)


def format_multitask_table(result: MultiTaskResult, markdown: bool = False) -> str:
    """Rows: task (checkpoint); columns: its metric, digital and each drift time (mean +- std)."""
    labels = [p.label for p in result.tasks[0].curve.points]
    rows = []
    for t in result.tasks:
        fmt = metric_format(t.metric_name)
        rows.append([t.curve.name, t.metric_name, fmt(t.curve.digital_metric),
                     *(fmt.spread(p.mean, p.std, len(p.metrics)) for p in t.curve.points)])
    return format_table(["task: checkpoint", "metric", "digital", *labels], rows, markdown)
