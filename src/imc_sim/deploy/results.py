"""Typed results of ``imc-sim deploy`` / ``imc-sim compare`` and the experiments, and their JSON.

A result file carries ``schema_version`` (:data:`SCHEMA_VERSION`); a file without it is schema 0
(written before this module), read and converted on load. JSON of a deploy result::

    {"schema_version", "checkpoint", "name", "method", "device_trained", "task", "metric_name",
     "device", "device_file", "analog_head", "dev_examples", "seeds", "digital_metric",
     "mapping": {"device", "analog_layers", "tiles", "tile_size", "weights_on_nvm", "digital_params",
                 ["placement": {"digital_layers", "fraction_on_chip"}], ["input_ranges"]},
     "times": [{"t_seconds", "label", "metrics", "mean", "std", "min"}, ...]}

and of a compare result (the experiment scripts add ``experiment``, ``quick``, ``steps``)::

    {"schema_version", "device", "seeds", "task", "metric_name",
     "checkpoints": [{"name", "path", "method", "device_trained", "digital_metric", "mapping", "times"}]}

and of a multi-task result (``imc-sim multitask``: one chip, each task's GRASP adapter in its
periphery)::

    {"schema_version", "device", "device_file", "seeds", "base_digest", "mapping",
     "tasks": [{"task", "metric_name", "dev_examples", "name", "path", "method", "device_trained",
                "digital_metric", "mapping", "times"}]}
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from imc_sim.atomic import write_json_atomic
from imc_sim.documents import read_json_object
from imc_sim.errors import ImcSimError
from imc_sim.units import format_time

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class SeedSummary:
    """One metric per seed (chip), their mean, sample std (n - 1; 0 for one seed) and minimum."""

    metrics: tuple[float, ...]
    mean: float
    std: float
    min: float

    @classmethod
    def of(cls, values: Sequence[float]) -> SeedSummary:
        n = len(values)
        if n == 0:
            raise ValueError("a summary needs at least one value")
        mean = sum(values) / n
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
        return cls(tuple(values), mean, std, min(values))

    def to_json(self) -> dict[str, Any]:
        return {"metrics": list(self.metrics), "mean": self.mean, "std": self.std, "min": self.min}


@dataclass(frozen=True)
class TimePoint:
    """The metric of every seed at ``t_seconds`` after programming, and their summary."""

    t_seconds: float
    label: str
    metrics: tuple[float, ...]
    mean: float
    std: float
    min: float

    @classmethod
    def of(cls, t_seconds: float, values: Sequence[float]) -> TimePoint:
        s = SeedSummary.of(values)
        return cls(t_seconds, format_time(t_seconds), s.metrics, s.mean, s.std, s.min)

    def to_json(self) -> dict[str, Any]:
        return {"t_seconds": self.t_seconds, "label": self.label,
                **SeedSummary(self.metrics, self.mean, self.std, self.min).to_json()}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> TimePoint:
        return cls(float(raw["t_seconds"]), raw["label"], tuple(raw["metrics"]), raw["mean"], raw["std"],
                   raw["min"])


@dataclass(frozen=True)
class LayerPlacement:
    """The layers kept digital that could have gone onto tiles, and the fraction of those layers'
    weights that is on the chip."""

    digital_layers: tuple[str, ...]
    fraction_on_chip: float

    def to_json(self) -> dict[str, Any]:
        return {"digital_layers": list(self.digital_layers), "fraction_on_chip": self.fraction_on_chip}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> LayerPlacement:
        return cls(tuple(raw["digital_layers"]), float(raw["fraction_on_chip"]))


@dataclass(frozen=True)
class MappingSummary:
    """What went onto tiles: analog layers, tiles of ``tile_size``, weights on NVM, digital rest;
    ``placement`` when layers were kept digital and ``input_ranges`` (static ranges: where they
    came from, 'checkpoint', 'training data (PATH)' or 'dev set') where set (absent from the JSON
    otherwise)."""

    device: str
    analog_layers: int
    tiles: int
    tile_size: str
    weights_on_nvm: int
    digital_params: int
    placement: LayerPlacement | None = None
    input_ranges: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = {"device": self.device, "analog_layers": self.analog_layers, "tiles": self.tiles,
               "tile_size": self.tile_size, "weights_on_nvm": self.weights_on_nvm,
               "digital_params": self.digital_params}
        if self.placement:
            out["placement"] = self.placement.to_json()
        if self.input_ranges is not None:
            out["input_ranges"] = self.input_ranges
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> MappingSummary:
        placement = raw.get("placement")
        return cls(raw["device"], raw["analog_layers"], raw["tiles"], raw["tile_size"],
                   raw["weights_on_nvm"], raw["digital_params"],
                   LayerPlacement.from_json(placement) if placement else None, raw.get("input_ranges"))


@dataclass(frozen=True)
class CheckpointCurve:
    """One checkpoint on one device: its digital metric and one :class:`TimePoint` per drift time.

    ``device_trained`` is e.g. 'pcm @ 1h..1y' for a device-aware checkpoint, else None;
    ``mapping`` is None in schema-0 compare files (they did not record it).
    """

    name: str
    path: str
    method: str
    device_trained: str | None
    digital_metric: float
    points: tuple[TimePoint, ...]
    mapping: MappingSummary | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "method": self.method,
                "device_trained": self.device_trained, "digital_metric": self.digital_metric,
                "mapping": self.mapping.to_json() if self.mapping else None,
                "times": [p.to_json() for p in self.points]}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> CheckpointCurve:
        mapping = raw.get("mapping")
        return cls(raw["name"], raw["path"], raw["method"], raw.get("device_trained"),
                   raw["digital_metric"], tuple(TimePoint.from_json(p) for p in raw["times"]),
                   MappingSummary.from_json(mapping) if mapping else None)

    def at(self, label: str) -> TimePoint:
        """The point whose label is ``label`` ('1d')."""
        for point in self.points:
            if point.label == label:
                return point
        raise KeyError(f"{self.name} has no point at {label}")


@dataclass(frozen=True)
class DeployResult:
    """``imc-sim deploy``: one checkpoint on one device, seeds 0..seeds-1."""

    curve: CheckpointCurve
    task: str
    metric_name: str
    device: str
    device_file: str | None
    analog_head: bool
    dev_examples: int
    seeds: int
    schema_version: ClassVar[int] = SCHEMA_VERSION

    def to_json(self) -> dict[str, Any]:
        c = self.curve
        return {"schema_version": self.schema_version, "checkpoint": c.path, "name": c.name,
                "method": c.method, "device_trained": c.device_trained, "task": self.task,
                "metric_name": self.metric_name, "device": self.device, "device_file": self.device_file,
                "analog_head": self.analog_head, "dev_examples": self.dev_examples, "seeds": self.seeds,
                "digital_metric": c.digital_metric, "mapping": c.mapping.to_json() if c.mapping else None,
                "times": [p.to_json() for p in c.points]}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> DeployResult:
        """Schema 0 had no ``name`` (the plot's label, method and path) nor ``device_trained``."""
        _check_version(raw)
        default_name = f"{raw['method']} ({raw['checkpoint']})"
        curve = CheckpointCurve.from_json({**raw, "path": raw["checkpoint"],
                                           "name": raw.get("name", default_name)})
        return cls(curve, raw["task"], raw["metric_name"], raw["device"], raw.get("device_file"),
                   raw.get("analog_head", False), raw["dev_examples"], raw["seeds"])


@dataclass(frozen=True)
class ExperimentTag:
    """Which experiment script wrote a compare result, whether ``--quick``, and its training steps."""

    name: str
    quick: bool
    steps: int


@dataclass(frozen=True)
class CompareResult:
    """``imc-sim compare``: several checkpoints on one device, the same chips (seeds) for each."""

    device: str
    seeds: int
    task: str
    metric_name: str
    checkpoints: tuple[CheckpointCurve, ...]
    experiment: ExperimentTag | None = None
    schema_version: ClassVar[int] = SCHEMA_VERSION

    def to_json(self) -> dict[str, Any]:
        out = {"schema_version": self.schema_version, "device": self.device, "seeds": self.seeds,
               "task": self.task, "metric_name": self.metric_name,
               "checkpoints": [c.to_json() for c in self.checkpoints]}
        if self.experiment:
            out.update(experiment=self.experiment.name, quick=self.experiment.quick,
                       steps=self.experiment.steps)
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> CompareResult:
        _check_version(raw)
        tag = ExperimentTag(raw["experiment"], raw["quick"], raw["steps"]) if "experiment" in raw else None
        return cls(raw["device"], raw["seeds"], raw["task"], raw["metric_name"],
                   tuple(CheckpointCurve.from_json(c) for c in raw["checkpoints"]), tag)

    def by_name(self, name: str) -> CheckpointCurve:
        for curve in self.checkpoints:
            if curve.name == name:
                return curve
        raise KeyError(f"no checkpoint named {name}")


@dataclass(frozen=True)
class TaskCurve:
    """One task of a multi-task chip: its checkpoint's curve on its own dev set."""

    task: str
    metric_name: str
    dev_examples: int
    curve: CheckpointCurve

    def to_json(self) -> dict[str, Any]:
        return {"task": self.task, "metric_name": self.metric_name, "dev_examples": self.dev_examples,
                **self.curve.to_json()}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> TaskCurve:
        return cls(raw["task"], raw["metric_name"], raw["dev_examples"], CheckpointCurve.from_json(raw))


@dataclass(frozen=True)
class MultiTaskResult:
    """``imc-sim multitask``: one chip per seed holding the shared frozen base (``base_digest``:
    SHA-256 of its analog weights), programmed once; every task read out at every time."""

    device: str
    device_file: str | None
    seeds: int
    base_digest: str
    mapping: MappingSummary
    tasks: tuple[TaskCurve, ...]
    schema_version: ClassVar[int] = SCHEMA_VERSION

    def to_json(self) -> dict[str, Any]:
        return {"schema_version": self.schema_version, "device": self.device,
                "device_file": self.device_file, "seeds": self.seeds, "base_digest": self.base_digest,
                "mapping": self.mapping.to_json(), "tasks": [t.to_json() for t in self.tasks]}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> MultiTaskResult:
        _check_version(raw)
        return cls(raw["device"], raw.get("device_file"), raw["seeds"], raw["base_digest"],
                   MappingSummary.from_json(raw["mapping"]),
                   tuple(TaskCurve.from_json(t) for t in raw["tasks"]))


AnyResult = DeployResult | CompareResult | MultiTaskResult


def _check_version(raw: dict[str, Any]) -> None:
    version = raw.get("schema_version", 0)
    if not isinstance(version, int) or not 0 <= version <= SCHEMA_VERSION:
        raise ImcSimError(f"unknown result schema_version {version!r} (this imc-sim reads 0 to "
                          f"{SCHEMA_VERSION})")


def result_from_json(raw: dict[str, Any]) -> AnyResult:
    """A compare result (it has ``checkpoints``), a multi-task result (``tasks``) or a deploy
    result, of any schema version."""
    try:
        if "tasks" in raw:
            return MultiTaskResult.from_json(raw)
        return CompareResult.from_json(raw) if "checkpoints" in raw else DeployResult.from_json(raw)
    except (KeyError, TypeError, ValueError) as exc:
        raise ImcSimError(f"not an imc-sim deploy or compare result: missing or bad {exc}") from None


def load_result(path: str | os.PathLike[str]) -> AnyResult:
    """Read a result file written by ``deploy`` / ``compare`` / ``multitask`` / the experiments
    (any schema)."""
    return result_from_json(read_json_object(path, "an imc-sim result"))


def save_result(path: str | os.PathLike[str], result: AnyResult) -> None:
    """Write ``result`` as indented JSON, atomically (a result :func:`load_result` reads back)."""
    if not isinstance(result, DeployResult | CompareResult | MultiTaskResult):
        raise ImcSimError(f"save_result writes deploy, compare and multitask results, not a "
                          f"{type(result).__name__} (sensitivity and placement results have save_sensitivity "
                          "and save_placement)")
    write_json_atomic(path, result.to_json())
