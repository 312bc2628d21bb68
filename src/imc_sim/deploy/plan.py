"""A sweep plan read from YAML: checkpoints x devices x seeds, each unit one programmed chip.

Plan file (paths are relative to the plan file's folder)::

    checkpoints: [runs/grasp.pt, runs/stochgrasp.pt]
    devices: [pcm, my-pcm.yaml]          # shipped names or YAML paths
    seeds: 5                             # 0..4, or a list such as [0, 7, 9]
    times: [1s, 1h, 1d, 1y]              # or one string "1s,1h,1d,1y"
    data_dir: glue                       # optional: GLUE layout; default $IMC_SIM_DATA, else the hub
    eval_limit: 256                      # optional: the first N dev examples (lines for --task lm)
    resources: {cpus: 1, gpus: 0}        # optional: what one unit asks of a Ray worker

or, instead of ``data_dir``, the user's own dev data, as ``imc-sim deploy`` takes it (see
:mod:`imc_sim.deploy.plan_data`)::

    validation_file: data/dev.csv        # .csv/.tsv/.jsonl; plain text for --task lm checkpoints
    text_column: review                  # optional, as are label_column, header and file_format
    label_column: sentiment

The checkpoints share one task: all classifiers of one task, or all language models (``--task
lm``, scored by held-out perplexity on ``validation_file``, lower is better).

A unit is (checkpoint, device, seed): programmed once, drifted to every time, evaluated at each.
Its key hashes what its numbers depend on and nothing else: the checkpoint file's content (SHA-256
of its bytes, not path + size + mtime: checkpoints are kilobytes to a few hundred MB, read once
anyway to ship them to workers, and a content hash survives copying to another machine and catches
a checkpoint retrained in place), the device profile's validated content, the seed, the times, the
dev file's content (or the hub) and, for own data, its format, header and columns as the plan
gives them, the eval limit and the imc-sim version. Worker resources are not part of it: the
numbers do not depend on them.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from imc_sim import __version__
from imc_sim.deploy.digest import sha256_bytes, sha256_json
from imc_sim.deploy.plan_data import DATA_KEYS, DataRef, load_data, resolve_path
from imc_sim.deploy.sweep import MAX_SEEDS
from imc_sim.devices.profile import DeviceProfile, load_profile
from imc_sim.documents import MalformedDocument, parse_yaml, real_number, sorted_keys
from imc_sim.errors import ImcSimError
from imc_sim.jobs import Resources
from imc_sim.tasks import TaskSpec, task_from_checkpoint
from imc_sim.units import parse_times

REQUIRED = ("checkpoints", "devices", "seeds", "times")
KEYS = (*REQUIRED, *DATA_KEYS, "eval_limit", "resources")
RESOURCE_KEYS = ("cpus", "gpus")


@dataclass(frozen=True)
class CheckpointRef:
    """One checkpoint of the plan: where it is, its content hash and what the summary shows."""

    spec: str  # as written in the plan
    path: Path
    sha256: str
    method: str
    task: TaskSpec
    device_trained: str | None

    @property
    def name(self) -> str:
        return self.path.stem


@dataclass(frozen=True)
class DeviceRef:
    """One device of the plan: the validated profile and a hash of its content."""

    spec: str
    profile: DeviceProfile
    sha256: str


@dataclass(frozen=True)
class Unit:
    """One programmed chip: a checkpoint on a device with one seed, drifted to every time."""

    checkpoint: CheckpointRef
    device: DeviceRef
    seed: int
    times: tuple[float, ...]
    data: DataRef
    eval_limit: int | None
    resources: Resources

    def identity(self) -> dict[str, Any]:
        """Everything the unit's numbers depend on (see the module docstring)."""
        return {"checkpoint_sha256": self.checkpoint.sha256, "device_sha256": self.device.sha256,
                "seed": self.seed, "times": list(self.times), **self.data.identity(),
                "eval_limit": self.eval_limit, "imc_sim_version": __version__}

    @cached_property
    def key(self) -> str:
        return sha256_json(self.identity())[:20]

    def entry(self) -> dict[str, Any]:
        """The plan entry as stored beside each result: the identity plus readable names."""
        return {"checkpoint": self.checkpoint.spec, "device": self.device.profile.name,
                "device_spec": self.device.spec, **self.identity()}


@dataclass(frozen=True)
class SweepPlan:
    path: Path
    checkpoints: tuple[CheckpointRef, ...]
    devices: tuple[DeviceRef, ...]
    seeds: tuple[int, ...]
    times: tuple[float, ...]
    data: DataRef
    eval_limit: int | None
    resources: Resources

    def units(self) -> list[Unit]:
        """Device-major, then checkpoint, then seed (the summary's order)."""
        return [Unit(c, d, s, self.times, self.data, self.eval_limit, self.resources)
                for d in self.devices for c in self.checkpoints for s in self.seeds]


def _fail(path: Path, message: str) -> ImcSimError:
    return ImcSimError(f"plan {path}: {message}")


@contextmanager
def _named(path: Path) -> Iterator[None]:
    """The plan's path in front of an error raised while reading one of its fields."""
    try:
        yield
    except ImcSimError as exc:
        raise _fail(path, str(exc)) from None


def _string_list(raw: dict, key: str, path: Path) -> list[str]:
    value = raw[key]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise _fail(path, f"{key} must be a non-empty list of names or paths, got {value!r}")
    return value


def _seeds(value: Any, path: Path) -> tuple[int, ...]:
    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if is_int(value):
        if not 1 <= value <= MAX_SEEDS:
            raise _fail(path, f"seeds = {value} must be a count from 1 to {MAX_SEEDS} or a list of seeds")
        return tuple(range(value))
    if not isinstance(value, list) or not value or not all(is_int(v) and v >= 0 for v in value):
        raise _fail(path, f"seeds must be a count or a non-empty list of seeds >= 0, got {value!r}")
    repeated = sorted({v for v in value if value.count(v) > 1})
    if repeated:
        raise _fail(path, f"duplicate plan entry: seed {repeated[0]} is listed twice")
    return tuple(value)


def _checkpoints(specs: list[str], base: Path, path: Path) -> tuple[CheckpointRef, ...]:
    from imc_sim.deploy.compare import check_comparable
    from imc_sim.deploy.run import device_trained

    files = [resolve_path(base, s) for s in specs]
    for spec, file in zip(specs, files, strict=True):
        if not file.is_file():
            raise _fail(path, f"checkpoint {spec} not found ({file})")
    with _named(path):
        metas = check_comparable(files)
    refs, seen = [], {}
    for spec, file, meta in zip(specs, files, metas, strict=True):
        digest = sha256_bytes(file.read_bytes())
        if digest in seen:
            raise _fail(path, f"duplicate plan entry: checkpoints {seen[digest]} and {spec} "
                              "have the same content")
        seen[digest] = spec
        refs.append(CheckpointRef(spec, file, digest, meta["method"], task_from_checkpoint(meta),
                                  device_trained(meta)))
    return tuple(refs)


def _devices(specs: list[str], base: Path, path: Path, times: list[float]) -> tuple[DeviceRef, ...]:
    refs, seen = [], {}
    for spec in specs:
        local = resolve_path(base, spec)
        with _named(path):
            profile = load_profile(str(local) if local.is_file() else spec)
            profile.check_times(times)
        content = {k: v for k, v in dataclasses.asdict(profile).items() if k != "path"}
        digest = sha256_json(content)
        if digest in seen or profile.name in {d.profile.name for d in refs}:
            raise _fail(path, f"duplicate plan entry: device {spec} repeats {seen.get(digest, profile.name)}")
        seen[digest] = spec
        refs.append(DeviceRef(spec, profile, digest))
    return tuple(refs)


def _eval_limit(value: Any, path: Path) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _fail(path, f"eval_limit = {value!r} must be a whole number >= 1")
    return value


def _resources(value: Any, path: Path) -> Resources:
    if value is None:
        return Resources()
    if not isinstance(value, dict) or set(value) - set(RESOURCE_KEYS):
        raise _fail(path, f"resources must be a mapping with {' and/or '.join(RESOURCE_KEYS)}, got {value!r}")
    cpus, gpus = value.get("cpus", 1), value.get("gpus", 0)
    if isinstance(cpus, bool) or not isinstance(cpus, int) or cpus < 1:
        raise _fail(path, f"resources.cpus = {cpus!r} must be a whole number >= 1")
    if real_number(gpus) is None or gpus < 0:
        raise _fail(path, f"resources.gpus = {gpus!r} must be a number >= 0")
    return Resources(cpus, float(gpus))


def load_plan(path: str | os.PathLike[str]) -> SweepPlan:
    """Read and check a plan; every problem is one :class:`ImcSimError` line naming the plan."""
    path = Path(path)
    if not path.is_file():
        raise ImcSimError(f"no plan file {path}")
    try:
        raw = parse_yaml(path.read_text(encoding="utf-8"))
    except MalformedDocument as exc:
        raise _fail(path, str(exc)) from None
    except UnicodeDecodeError:
        raise _fail(path, "not a text file") from None
    if not isinstance(raw, dict):
        raise _fail(path, "expected a mapping of " + ", ".join(KEYS))
    unknown = sorted_keys(set(raw) - set(KEYS))
    if unknown:
        raise _fail(path, f"{unknown[0]} is not a plan field (known: {', '.join(KEYS)})")
    missing = [k for k in REQUIRED if k not in raw]
    if missing:
        raise _fail(path, f"{missing[0]} is missing")
    base = path.resolve().parent
    times_raw = raw["times"]
    with _named(path):
        times = parse_times([str(t) for t in times_raw] if isinstance(times_raw, list) else str(times_raw))
    seeds = _seeds(raw["seeds"], path)
    eval_limit = _eval_limit(raw.get("eval_limit"), path)
    resources = _resources(raw.get("resources"), path)
    devices = _devices(_string_list(raw, "devices", path), base, path, times)
    checkpoints = _checkpoints(_string_list(raw, "checkpoints", path), base, path)
    with _named(path):
        data = load_data(raw, base, [c.task for c in checkpoints], eval_limit)
    return SweepPlan(path, checkpoints, devices, seeds, tuple(times), data, eval_limit, resources)
