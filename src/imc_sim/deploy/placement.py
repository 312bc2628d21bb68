"""Placement: which layers stay digital, and the metric against the fraction of weights on the chip.

``--digital-layers PATTERNS`` keeps the matched layers digital
(:func:`imc_sim.crossbar.placement.digital_layer_names`); ``--keep-digital N`` keeps the N layers
that cost most digital, ranked by the ``one-analog`` sensitivity map
(:mod:`imc_sim.deploy.sensitivity`) at the first drift time over the deployment's own seeds: a
choice made on the chips and data it is then measured on, as a designer with a calibration set
would make it. JSON of a placement curve (``schema_version`` :data:`SCHEMA_VERSION`)::

    {"schema_version", "kind": "placement", "sensitivity": {the ranking's sensitivity result},
     "ranked_at", "curve": [{"keep_digital", "digital_layers", "fraction_on_chip",
                             "times": [TimePoint, ...]}, ...]}
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from torch import nn
from tqdm.auto import tqdm

from imc_sim.atomic import write_json_atomic
from imc_sim.crossbar.mapping import Deployment, analog_layer_names, deploy_model
from imc_sim.crossbar.placement import digital_layer_names
from imc_sim.deploy.chip import Chip
from imc_sim.deploy.results import TimePoint
from imc_sim.deploy.sensitivity import SensitivityResult, measure_maps, rank_layers, short_names
from imc_sim.devices.profile import DeviceProfile
from imc_sim.errors import ImcSimError
from imc_sim.table import format_table

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Placement:
    """``--digital-layers`` patterns (None: none; comma-separated, or from Python a list of them)
    and ``--keep-digital`` N."""

    digital_layers: str | None = None
    keep_digital: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.digital_layers, list | tuple):
            object.__setattr__(self, "digital_layers", ",".join(self.digital_layers))
        if self.keep_digital < 0:
            raise ImcSimError(f"--keep-digital must be 0 or more, got {self.keep_digital}")


def choose_digital(model: nn.Module, profile: DeviceProfile, placement: Placement, analog_head: bool,
                   measure: Callable[[], float], seeds: Sequence[int], t_seconds: float,
                   calibrate: Callable[[Deployment], None], progress: bool = True,
                   higher_is_better: bool = True) -> list[str]:
    """The layers of ``model`` that ``placement`` keeps digital, in model order. ``measure()``
    evaluates ``model`` (``higher_is_better``: its metric's direction; False for perplexity); for
    ``keep_digital`` the model is deployed (in place, its static input ranges set by ``calibrate``)
    to rank the layers at ``t_seconds`` on ``seeds``, and left digital again afterwards."""
    digital = digital_layer_names(model, placement.digital_layers, analog_head) \
        if placement.digital_layers is not None else []
    analog = len(analog_layer_names(model, analog_head)) - len(digital)
    if analog == 0:
        raise ImcSimError(f"--digital-layers {placement.digital_layers} keeps every analog layer digital: "
                          "nothing left to map to tiles")
    if placement.keep_digital >= analog:
        raise ImcSimError(f"--keep-digital {placement.keep_digital} leaves none of the {analog} analog "
                          f"layers on the chip (at most {analog - 1})")
    if placement.keep_digital == 0:
        return digital
    deployment = deploy_model(model, profile, analog_head, digital)
    calibrate(deployment)
    _, maps = measure_maps(deployment, measure, seeds, [t_seconds], ["one-analog"], progress)
    deployment.use_analog([])  # the model is digital again
    chosen = set(rank_layers(maps[0], 0, higher_is_better)[: placement.keep_digital]) | set(digital)
    return [name for name in analog_layer_names(model, analog_head) if name in chosen]


@dataclass(frozen=True)
class PlacementPoint:
    """The metric per drift time with the ``keep_digital`` costliest layers digital."""

    keep_digital: int
    digital_layers: tuple[str, ...]
    fraction_on_chip: float
    points: tuple[TimePoint, ...]

    def to_json(self) -> dict[str, Any]:
        return {"keep_digital": self.keep_digital, "digital_layers": list(self.digital_layers),
                "fraction_on_chip": self.fraction_on_chip, "times": [p.to_json() for p in self.points]}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> PlacementPoint:
        return cls(raw["keep_digital"], tuple(raw["digital_layers"]), raw["fraction_on_chip"],
                   tuple(TimePoint.from_json(p) for p in raw["times"]))


@dataclass(frozen=True)
class PlacementResult:
    """The metric against the fraction of weights on the chip; ``sensitivity`` holds the
    ``one-analog`` map at ``ranked_at`` that ranked the layers (and the checkpoint's details)."""

    sensitivity: SensitivityResult
    ranked_at: str
    curve: tuple[PlacementPoint, ...]
    schema_version: ClassVar[int] = SCHEMA_VERSION

    def to_json(self) -> dict[str, Any]:
        return {"schema_version": self.schema_version, "kind": "placement",
                "sensitivity": self.sensitivity.to_json(), "ranked_at": self.ranked_at,
                "curve": [p.to_json() for p in self.curve]}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> PlacementResult:
        if raw.get("kind") != "placement" or raw.get("schema_version") != SCHEMA_VERSION:
            raise ImcSimError(f"not an imc-sim placement result of schema {SCHEMA_VERSION}")
        try:
            return cls(SensitivityResult.from_json(raw["sensitivity"]), raw["ranked_at"],
                       tuple(PlacementPoint.from_json(p) for p in raw["curve"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ImcSimError(f"not an imc-sim placement result: missing or bad {exc}") from None


def save_placement(path: str | os.PathLike[str], result: PlacementResult) -> None:
    write_json_atomic(path, result.to_json())


def placement_curve(deployment: Deployment, ranking: Sequence[str], counts: Sequence[int],
                    measure: Callable[[], float], seeds: Sequence[int], times: Sequence[float],
                    progress: bool = True) -> tuple[PlacementPoint, ...]:
    """For each N of ``counts``, the first N layers of ``ranking`` digital and the rest of
    ``deployment`` on its tiles: the metric per time over ``seeds``, each chip programmed once.
    Every layer is analog afterwards, also when ``measure()`` raises."""
    names = list(deployment.layers)
    weights = {name: layer.in_features * layer.out_features for name, layer in deployment.layers.items()}
    total = sum(weights.values()) + sum(deployment.kept_digital.values())
    per: list[list[list[float]]] = [[[] for _ in times] for _ in counts]
    try:
        with tqdm(total=len(seeds) * len(times) * len(counts), desc="placement N x seeds",
                  disable=not progress) as bar:
            for seed in seeds:
                chip = Chip(deployment, seed)
                chip.program()
                for k, t in enumerate(times):
                    chip.drift_to(t)
                    for j, n in enumerate(counts):
                        deployment.use_analog([name for name in names if name not in ranking[:n]])
                        per[j][k].append(measure())
                        bar.update()
    finally:
        deployment.use_analog(names)
    out = []
    for n, values in zip(counts, per, strict=True):
        kept = [name for name in names if name in ranking[:n]]
        on_chip = sum(weights.values()) - sum(weights[name] for name in kept)
        out.append(PlacementPoint(n, tuple(kept), on_chip / total if total else 0.0,
                                  tuple(TimePoint.of(t, m) for t, m in zip(times, values, strict=True))))
    return tuple(out)


def format_placement_table(result: PlacementResult, markdown: bool = False) -> str:
    """One row per N: the fraction of weights on the chip, the metric (mean +- std over seeds)
    per drift time, and the layers made digital since the previous row (the first three of more)."""
    names = [layer.name for layer in result.sensitivity.maps[0].layers]
    short = dict(zip(names, short_names(names), strict=True))
    fmt = result.sensitivity.format
    rows, before = [], set()
    for p in result.curve:
        added = [short[name] for name in p.digital_layers if name not in before]
        if len(added) > 4:
            added = [*added[:3], f"... ({len(added)} layers)"]
        before = set(p.digital_layers)
        rows.append([p.keep_digital, f"{100 * p.fraction_on_chip:.1f}",
                     *(fmt.spread(t.mean, t.std, len(t.metrics)) for t in p.points), ", ".join(added)])
    labels = [t.label for t in result.curve[0].points]
    s = result.sensitivity
    return format_table(["kept digital", "% weights on chip", *(f"{s.metric_name} @ {x}" for x in labels),
                         "newly digital"], rows, markdown)
