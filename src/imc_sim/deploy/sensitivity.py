"""Per-layer sensitivity: what each layer costs when it is on the chip, per drift time.

Two maps, both over the same chips (seeds):

- ``one-analog``: one layer at a time on its tiles, every other layer digital; the layer's cost
  is the metric lost, ``digital - metric`` (per seed);
- ``one-digital``: every layer on its tiles but one, kept digital; the layer's cost is the metric
  that keeping it digital wins back, ``metric - all-analog metric`` of the same chip (per seed).

For a metric where lower is better (a language model's perplexity) both differences change sign:
a cost is always positive where the layer makes the model worse, and shown in the metric's own
format (:func:`imc_sim.metrics.metric_format`: points of a percentage, or perplexity).

Each seed programs the whole chip once; layers are switched between tiles and digital with
:meth:`imc_sim.crossbar.mapping.Deployment.use_analog`, which gives the numbers of a fresh
deployment of the same layers on the same chip (a layer's noise is drawn from its own streams).
JSON (``schema_version`` :data:`SCHEMA_VERSION`; metrics as evaluated, one per seed)::

    {"schema_version", "kind": "sensitivity", "checkpoint", "method", "task", "metric_name",
     "device", "device_file", "analog_head", "dev_examples", "seeds", "digital_metric",
     "all_analog": [TimePoint, ...],
     "maps": [{"mode", "layers": [{"name", "weights", "times": [TimePoint, ...]}, ...]}, ...]}
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from tqdm.auto import tqdm

from imc_sim.atomic import write_json_atomic
from imc_sim.crossbar.mapping import Deployment
from imc_sim.deploy.chip import Chip
from imc_sim.deploy.results import SeedSummary, TimePoint
from imc_sim.documents import read_json_object
from imc_sim.errors import ImcSimError
from imc_sim.metrics import MetricFormat, metric_format
from imc_sim.table import format_table

SCHEMA_VERSION = 1
MODES = ("one-analog", "one-digital")


@dataclass(frozen=True)
class LayerSensitivity:
    """One layer's metric per drift time (one value per seed) in one mode's configuration."""

    name: str
    weights: int
    points: tuple[TimePoint, ...]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "weights": self.weights, "times": [p.to_json() for p in self.points]}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> LayerSensitivity:
        return cls(raw["name"], raw["weights"], tuple(TimePoint.from_json(p) for p in raw["times"]))


@dataclass(frozen=True)
class SensitivityMap:
    """The layers of one mode (``one-analog`` or ``one-digital``), in model order."""

    mode: str
    layers: tuple[LayerSensitivity, ...]

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "layers": [layer.to_json() for layer in self.layers]}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> SensitivityMap:
        return cls(raw["mode"], tuple(LayerSensitivity.from_json(layer) for layer in raw["layers"]))


@dataclass(frozen=True)
class SensitivityResult:
    """``imc-sim sensitivity``: the maps of one checkpoint on one device, seeds 0..seeds-1;
    ``all_analog`` is the metric with every layer on its tiles, per drift time."""

    checkpoint: str
    method: str
    task: str
    metric_name: str
    device: str
    device_file: str | None
    analog_head: bool
    dev_examples: int
    seeds: int
    digital_metric: float
    all_analog: tuple[TimePoint, ...]
    maps: tuple[SensitivityMap, ...]
    schema_version: ClassVar[int] = SCHEMA_VERSION

    @property
    def labels(self) -> list[str]:
        return [p.label for p in self.all_analog]

    def by_mode(self, mode: str) -> SensitivityMap:
        for m in self.maps:
            if m.mode == mode:
                return m
        raise KeyError(f"no {mode} map in this result")

    @property
    def format(self) -> MetricFormat:
        return metric_format(self.metric_name)

    def costs(self, mode: str) -> list[list[SeedSummary]]:
        """[layer][time]: what the layer costs on the chip (see the module docstring), per seed."""
        sign = 1.0 if self.format.higher_is_better else -1.0
        out = []
        for layer in self.by_mode(mode).layers:
            row = []
            for point, reference in zip(layer.points, self.all_analog, strict=True):
                if mode == "one-analog":
                    values = [sign * (self.digital_metric - m) for m in point.metrics]
                else:
                    values = [sign * (m - a) for m, a in zip(point.metrics, reference.metrics, strict=True)]
                row.append(SeedSummary.of(values))
            out.append(row)
        return out

    def ranking(self, mode: str = "one-analog", time_index: int = 0) -> list[str]:
        """Layer names, costliest first at drift time ``time_index`` (see :func:`rank_layers`)."""
        return rank_layers(self.by_mode(mode), time_index, self.format.higher_is_better)

    def to_json(self) -> dict[str, Any]:
        return {"schema_version": self.schema_version, "kind": "sensitivity", "checkpoint": self.checkpoint,
                "method": self.method, "task": self.task, "metric_name": self.metric_name,
                "device": self.device, "device_file": self.device_file, "analog_head": self.analog_head,
                "dev_examples": self.dev_examples, "seeds": self.seeds, "digital_metric": self.digital_metric,
                "all_analog": [p.to_json() for p in self.all_analog],
                "maps": [m.to_json() for m in self.maps]}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> SensitivityResult:
        version = raw.get("schema_version")
        if raw.get("kind") != "sensitivity" or version != SCHEMA_VERSION:
            raise ImcSimError(f"not an imc-sim sensitivity result of schema {SCHEMA_VERSION} "
                              f"(kind {raw.get('kind')!r}, schema_version {version!r})")
        try:
            return cls(raw["checkpoint"], raw["method"], raw["task"], raw["metric_name"], raw["device"],
                       raw.get("device_file"), raw["analog_head"], raw["dev_examples"], raw["seeds"],
                       raw["digital_metric"], tuple(TimePoint.from_json(p) for p in raw["all_analog"]),
                       tuple(SensitivityMap.from_json(m) for m in raw["maps"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ImcSimError(f"not an imc-sim sensitivity result: missing or bad {exc}") from None


def rank_layers(layers: SensitivityMap, time_index: int = 0, higher_is_better: bool = True) -> list[str]:
    """Layer names, costliest first at drift time ``time_index``: the worst mean metric first in
    ``one-analog``, the best in ``one-digital`` (the lowest and the highest where higher is better,
    the other way round for perplexity; ties in model order)."""
    sign = 1.0 if (layers.mode == "one-analog") == higher_is_better else -1.0
    order = sorted(range(len(layers.layers)),
                   key=lambda i: (sign * layers.layers[i].points[time_index].mean, i))
    return [layers.layers[i].name for i in order]


def save_sensitivity(path: str | os.PathLike[str], result: SensitivityResult) -> None:
    """Write ``result`` as indented JSON, atomically."""
    write_json_atomic(path, result.to_json())


def load_sensitivity(path: str | os.PathLike[str]) -> SensitivityResult:
    return SensitivityResult.from_json(read_json_object(path, "an imc-sim sensitivity result"))


def configurations(mode: str, names: Sequence[str]) -> list[list[str]]:
    """The analog layers of each configuration of ``mode``, one per layer of ``names``."""
    if mode == "one-analog":
        return [[name] for name in names]
    if mode == "one-digital":
        return [[other for other in names if other != name] for name in names]
    raise ImcSimError(f"unknown sensitivity mode {mode!r} (modes: {', '.join(MODES)})")


def measure_maps(deployment: Deployment, measure: Callable[[], float], seeds: Sequence[int],
                 times: Sequence[float], modes: Sequence[str], progress: bool = True,
                 ) -> tuple[tuple[TimePoint, ...], tuple[SensitivityMap, ...]]:
    """The all-analog metric and each mode's map of ``deployment`` (every layer analog afterwards,
    also when ``measure()`` raises).

    Per seed the chip is programmed once and drifted to each time; ``measure()`` evaluates the
    deployment's model in each configuration."""
    names = list(deployment.layers)
    configs = {mode: configurations(mode, names) for mode in modes}
    all_analog: list[list[float]] = [[] for _ in times]
    per_layer = {mode: [[[] for _ in times] for _ in names] for mode in modes}
    total = len(seeds) * len(times) * (1 + len(modes) * len(names))
    try:
        with tqdm(total=total, desc="sensitivity layers x seeds", disable=not progress) as bar:
            for seed in seeds:
                chip = Chip(deployment, seed)
                chip.program()
                for k, t in enumerate(times):
                    chip.drift_to(t)
                    deployment.use_analog(names)
                    all_analog[k].append(measure())
                    bar.update()
                    for mode in modes:
                        for i, analog in enumerate(configs[mode]):
                            deployment.use_analog(analog)
                            per_layer[mode][i][k].append(measure())
                            bar.update()
    finally:
        deployment.use_analog(names)
    weights = [layer.in_features * layer.out_features for layer in deployment.layers.values()]
    maps = tuple(SensitivityMap(mode, tuple(
        LayerSensitivity(name, w, tuple(TimePoint.of(t, m) for t, m in zip(times, per_time, strict=True)))
        for name, w, per_time in zip(names, weights, per_layer[mode], strict=True))) for mode in modes)
    return tuple(TimePoint.of(t, m) for t, m in zip(times, all_analog, strict=True)), maps


def short_names(names: Sequence[str]) -> list[str]:
    """``names`` without the dotted prefix they all share ('bert.encoder.layer.')."""
    if len(names) < 2:
        return [name.rpartition(".")[2] or name for name in names]
    prefix = os.path.commonprefix(list(names))
    cut = prefix.rfind(".") + 1
    return [name[cut:] for name in names]


def cost_words(mode: str, fmt: MetricFormat) -> str:
    """What a cost of ``mode`` is, in words ('points lost with only it analog')."""
    analog = mode == "one-analog"
    if fmt.higher_is_better:
        return "points lost with only it analog" if analog else "points won back keeping it digital"
    return "added with only it analog" if analog else "taken off keeping it digital"


def format_sensitivity_table(result: SensitivityResult, mode: str) -> str:
    """One row per layer: its cost (mean +- std over seeds) at each drift time, in the metric's
    format: points of a percentage, or perplexity."""
    layers = result.by_mode(mode).layers
    fmt = result.format
    rows = [[short, f"{layer.weights:,}", *(f"{'+' if c.mean >= 0 else '-'}{fmt(abs(c.mean))} +- {fmt(c.std)}"
                                            for c in row)]
            for short, layer, row in zip(short_names([la.name for la in layers]), layers, result.costs(mode),
                                         strict=True)]
    head = (f"{mode}: {result.metric_name} {cost_words(mode, fmt)} ({result.seeds} seeds); digital "
            f"{fmt(result.digital_metric)}, all analog "
            + ", ".join(f"{p.label} {fmt(p.mean)}" for p in result.all_analog))
    return head + "\n" + format_table(["layer", "weights", *result.labels], rows)
