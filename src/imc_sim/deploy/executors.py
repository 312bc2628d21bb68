"""Executors: run units and yield their results as they finish, in this process or on Ray.

Both take the same units and compute the same numbers (:func:`imc_sim.deploy.unit.run_unit` on
the plan's thread count). On Ray each unit is one task declaring its CPUs and GPUs (a job of
:class:`imc_sim.jobs.RayRunner`, which starts, connects to and stops Ray); checkpoint and
dev-file bytes (GLUE's dev TSV or the plan's own validation file) travel through Ray's object store
(put once, shared by every unit that needs them; each checked against the plan's hash), so workers
need no shared file system; a worker that dies is retried by Ray (``max_retries``).
Ray is imported only when a Ray executor starts.
"""

from __future__ import annotations

import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from tqdm.auto import tqdm

from imc_sim.deploy.digest import sha256_bytes
from imc_sim.deploy.plan import SweepPlan, Unit
from imc_sim.deploy.store import StoreWriter, completed_keys, read_store
from imc_sim.deploy.unit import UnitResult, run_unit
from imc_sim.errors import ImcSimError
from imc_sim.jobs import Job, RayRunner, import_ray


class Executor(ABC):
    """Runs units; a context manager around whatever it needs started and stopped."""

    def __init__(self, progress: bool = True) -> None:
        self.progress = progress

    @abstractmethod
    def run(self, units: Sequence[Unit]) -> Iterator[UnitResult]:
        """Yield one result per unit, in the order they finish."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class InProcessExecutor(Executor):
    """One unit after another in this process, reading files where they are."""

    def run(self, units: Sequence[Unit]) -> Iterator[UnitResult]:
        for unit in tqdm(units, desc="sweep", disable=not self.progress):
            yield run_unit(unit, unit.checkpoint.path, unit.data.source)


def _run_shipped(unit: Unit, checkpoint: bytes, dev: bytes | None) -> UnitResult:
    """A Ray task: write the shipped bytes to a private folder and run the unit from there."""
    with tempfile.TemporaryDirectory(prefix="imc-sim-unit-") as tmp:
        path = Path(tmp) / "model.pt"
        path.write_bytes(checkpoint)
        source = unit.data.source
        if dev is not None:
            dev_file, source = unit.data.shipped(Path(tmp) / "data")
            dev_file.parent.mkdir(parents=True)
            dev_file.write_bytes(dev)
        return run_unit(unit, path, source)


def _unchanged(path: Path, sha256: str | None, what: str) -> bytes:
    """The bytes of ``path``, refused if they are no longer those the plan hashed."""
    data = path.read_bytes()
    if sha256_bytes(data) != sha256:
        raise ImcSimError(f"{what} changed since the plan was read")
    return data


class RayExecutor(Executor):
    """Each unit a Ray task on a local Ray (started here, or the one this process already runs)
    or on the cluster at ``address``."""

    def __init__(self, address: str | None = None, max_retries: int = 3, progress: bool = True) -> None:
        super().__init__(progress)
        self.runner = RayRunner(address, max_retries, progress)

    def __enter__(self) -> RayExecutor:
        self.runner.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.runner.__exit__(*exc)

    def _ship(self, ray: ModuleType, units: Sequence[Unit]) -> dict[str, Any]:
        """Object refs of every checkpoint (by content hash) and of the dev file, each put once, each
        checked against the hash the plan read."""
        refs: dict[str, Any] = {}
        for unit in units:
            c = unit.checkpoint
            if c.sha256 not in refs:
                refs[c.sha256] = ray.put(_unchanged(c.path, c.sha256, f"checkpoint {c.spec}"))
        dev = units[0].data if units else None
        refs["dev"] = None if dev is None or dev.dev_file is None else ray.put(
            _unchanged(dev.dev_file, dev.dev_sha256, f"dev file {dev.dev_file}"))
        return refs

    def run(self, units: Sequence[Unit]) -> Iterator[UnitResult]:
        refs = self._ship(import_ray(), units)
        jobs = [Job(_run_shipped, (u, refs[u.checkpoint.sha256], refs["dev"]),
                    f"unit {u.key} ({u.checkpoint.spec} on {u.device.profile.name}, seed {u.seed})",
                    u.resources) for u in units]
        for _, result in self.runner.run(jobs, "sweep"):
            yield result


@dataclass(frozen=True)
class SweepRun:
    """What one ``run_sweep`` did: units in the plan, found complete in the store, and run now."""

    planned: int
    found: int
    ran: int


def run_sweep(plan: SweepPlan, store: str | os.PathLike[str], executor: Executor) -> SweepRun:
    """Run the units of ``plan`` not yet complete in ``store``, appending each as it finishes.

    The store is read (and an incompatible one refused) before anything starts; the executor is
    started only when there is work, and the store opened for writing only once it has started."""
    units = plan.units()
    done = completed_keys(read_store(store), {u.key: u.times for u in units})
    todo = [u for u in units if u.key not in done]
    if todo:
        with executor, StoreWriter(store) as writer:
            for result in executor.run(todo):
                writer.append(result)
    return SweepRun(len(units), len(units) - len(todo), len(todo))
