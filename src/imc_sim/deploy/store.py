"""The results store: a JSON-lines file, one line per (unit, drift time), appended one unit at a time.

Line::

    {"format": "imc-sim-sweep", "format_version": 1, "imc_sim_version": "0.1.0", "unit": KEY,
     "entry": {plan entry}, "checkpoint_name", "method", "device_trained", "task", "metric_name",
     "digital_metric", "t_seconds", "label", "metric", "unit_seconds"}

A unit's lines go to the file in one ``write`` followed by ``fsync``, so after a crash the file
holds whole units and at most one torn last line; readers ignore a last line without its newline,
and the writer cuts it off before appending. A store written by another imc-sim version (its unit
keys, and perhaps its numbers, differ) is refused, never modified.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imc_sim import __version__
from imc_sim.deploy.plan import SweepPlan
from imc_sim.deploy.results import CheckpointCurve, CompareResult, TimePoint
from imc_sim.deploy.unit import UnitResult
from imc_sim.documents import MalformedDocument, parse_json, real_number
from imc_sim.errors import ImcSimError
from imc_sim.units import format_time

FORMAT = "imc-sim-sweep"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Record:
    """One stored line: a unit's metric at one drift time."""

    unit: str
    entry: dict[str, Any]
    checkpoint_name: str
    method: str
    device_trained: str | None
    task: str
    metric_name: str
    digital_metric: float
    t_seconds: float
    label: str
    metric: float
    unit_seconds: float


def result_lines(result: UnitResult) -> bytes:
    """The store lines of one finished unit, newline-terminated."""
    head = {"format": FORMAT, "format_version": FORMAT_VERSION, "imc_sim_version": __version__}
    lines = [json.dumps({**head, **Record(
        result.key, result.entry, result.checkpoint_name, result.method, result.device_trained,
        result.task, result.run.metric_name, result.run.digital_metric, t, format_time(t), metric,
        result.unit_seconds).__dict__}) for t, metric in zip(result.times, result.run.metrics, strict=True)]
    return "".join(line + "\n" for line in lines).encode()


def _record(line: str, path: Path, number: int) -> Record:
    try:
        raw = parse_json(line)
    except MalformedDocument:
        raw = None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ImcSimError(f"results store {path}: line {number} is not an imc-sim sweep result")
    version = (raw.get("format_version"), raw.get("imc_sim_version"))
    if version != (FORMAT_VERSION, __version__):
        raise ImcSimError(
            f"results store {path} was written by imc-sim {version[1]} (store format {version[0]}), "
            f"incompatible with imc-sim {__version__} (format {FORMAT_VERSION}); use another --store")
    try:
        record = Record(**{k: raw[k] for k in Record.__dataclass_fields__})
    except KeyError as exc:
        raise ImcSimError(f"results store {path}: line {number} lacks {exc.args[0]}") from None
    for name, kind in FIELD_KINDS.items():
        value = getattr(record, name)
        if not kind.holds(value):
            raise ImcSimError(
                f"results store {path}: line {number}'s {name} = {value!r:.40} is not {kind.name}")
    return record


@dataclass(frozen=True)
class Kind:
    """What a store field may hold: ``name`` as an error says it, ``holds`` the test."""

    name: str
    holds: Callable[[object], bool]


TEXT = Kind("text", lambda v: isinstance(v, str))
NUMBER = Kind("a finite number", lambda v: real_number(v) is not None)
FIELD_KINDS = {"unit": TEXT, "entry": Kind("a mapping", lambda v: isinstance(v, dict)),
               "checkpoint_name": TEXT, "method": TEXT,
               "device_trained": Kind("text or null", lambda v: v is None or isinstance(v, str)),
               "task": TEXT, "metric_name": TEXT, "digital_metric": NUMBER, "t_seconds": NUMBER,
               "label": TEXT, "metric": NUMBER, "unit_seconds": NUMBER}
"""The kind of every :class:`Record` field."""


def read_store(path: str | os.PathLike[str]) -> list[Record]:
    """Every complete line of the store (none if it does not exist); a torn last line is ignored."""
    path = Path(path)
    if not path.exists():
        return []
    *complete, torn = path.read_bytes().decode("utf-8", errors="replace").split("\n")
    head = json.dumps({"format": FORMAT})[:-1]
    if not (head.startswith(torn) or torn.startswith(head)):
        raise ImcSimError(f"results store {path}: line {len(complete) + 1} is not an imc-sim sweep result")
    return [_record(line, path, n) for n, line in enumerate(complete, 1) if line.strip()]


def completed_keys(records: Iterable[Record], times: dict[str, tuple[float, ...]]) -> set[str]:
    """Keys of the units in ``times`` (key -> the unit's drift times) with a line at every time."""
    seen: dict[str, set[float]] = {}
    for r in records:
        seen.setdefault(r.unit, set()).add(r.t_seconds)
    return {key for key, ts in times.items() if seen.get(key, set()) >= set(ts)}


class StoreWriter:
    """Appends units to the store under an exclusive lock (one sweep per store at a time)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise ImcSimError(f"results store {self.path} is in use by another sweep") from None
        self._cut_torn_tail()

    def _cut_torn_tail(self) -> None:
        """Drop a last line without its newline (a unit whose write was cut short)."""
        size = os.lseek(self._fd, 0, os.SEEK_END)
        if size == 0:
            return
        content = os.pread(self._fd, size, 0)
        if content.endswith(b"\n"):
            return
        os.ftruncate(self._fd, content.rfind(b"\n") + 1)
        os.fsync(self._fd)

    def append(self, result: UnitResult) -> None:
        """All of the unit's lines in one write, then fsync."""
        data = result_lines(result)
        os.lseek(self._fd, 0, os.SEEK_END)
        written = os.write(self._fd, data)
        if written != len(data):
            raise OSError(f"short write to {self.path} ({written} of {len(data)} bytes)")
        os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def summarize_store(plan: SweepPlan, records: Iterable[Record]) -> list[CompareResult]:
    """One ``compare`` result per device of ``plan``, its metrics over the plan's seeds read from
    ``records``; every unit must be complete."""
    found: dict[tuple[str, float], Record] = {(r.unit, r.t_seconds): r for r in records}
    results = []
    for device in plan.devices:
        curves = []
        for checkpoint in plan.checkpoints:
            units = [u for u in plan.units() if u.device is device and u.checkpoint is checkpoint]
            missing = [u for u in units if any((u.key, t) not in found for t in plan.times)]
            if missing:
                raise ImcSimError(f"results store lacks unit {missing[0].key} ({checkpoint.spec} on "
                                  f"{device.profile.name}, seed {missing[0].seed})")
            first = found[units[0].key, plan.times[0]]
            points = tuple(TimePoint.of(t, [found[u.key, t].metric for u in units]) for t in plan.times)
            curves.append(CheckpointCurve(checkpoint.name, checkpoint.spec, checkpoint.method,
                                          checkpoint.device_trained, first.digital_metric, points))
        results.append(CompareResult(device.profile.name, len(plan.seeds), plan.data.task.name,
                                     first.metric_name, tuple(curves)))
    return results
