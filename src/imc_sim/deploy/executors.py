"""Executors: run units and yield their results as they finish, in this process or on Ray.

Both take the same units and compute the same numbers (:func:`imc_sim.deploy.unit.run_unit` on
the plan's thread count). On Ray each unit is one task declaring its CPUs and GPUs; checkpoint and
dev-file bytes (GLUE's dev TSV or the plan's own validation file) travel through Ray's object store
(put once, shared by every unit that needs them; each checked against the plan's hash), so workers
need no shared file system; a worker that dies is retried by Ray (``max_retries``).
Ray is imported only when a Ray executor starts.
"""

from __future__ import annotations

import os
import socket
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

CONNECT_TIMEOUT_S = 3.0


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


def import_ray() -> ModuleType:
    try:
        import ray
    except ImportError:
        raise ImcSimError('Ray is not installed: pip install "imc-sim[ray]"') from None
    return ray


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Refuse an address nothing answers on (Ray itself would wait a minute and say more)."""
    if address in ("auto", "local"):
        return
    host, sep, port = address.split("://", 1)[-1].rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ImcSimError(f"Ray address {address!r} is not HOST:PORT (or ray://HOST:PORT, auto)")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ImcSimError(f"cannot reach Ray at {address}: {exc.strerror or exc}") from None


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
        self.address = address
        self.max_retries = max_retries
        self._started = False

    def __enter__(self) -> RayExecutor:
        ray = import_ray()
        if self.address is not None:
            check_reachable(self.address)
            try:
                ray.init(address=self.address, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise ImcSimError(f"cannot connect to Ray at {self.address}: {first[:200]}") from None
            self._started = True
        elif not ray.is_initialized():
            ray.init(log_to_driver=False)
            self._started = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._started:
            import_ray().shutdown()
            self._started = False

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
        ray = import_ray()
        task = ray.remote(_run_shipped)
        refs = self._ship(ray, units)
        pending = {
            task.options(num_cpus=u.resources.cpus, num_gpus=u.resources.gpus,
                         max_retries=self.max_retries).remote(u, refs[u.checkpoint.sha256], refs["dev"]): u
            for u in units
        }
        try:
            with tqdm(total=len(pending), desc="sweep (ray)", disable=not self.progress) as bar:
                while pending:
                    done, _ = ray.wait(list(pending), num_returns=1)
                    unit = pending.pop(done[0])
                    yield self._result(ray, done[0], unit)
                    bar.update()
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)

    def _result(self, ray: ModuleType, ref: Any, unit: Unit) -> UnitResult:
        """The task's result; a user error inside it becomes the same one-line error here."""
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            if isinstance(exc.cause, ImcSimError):
                raise ImcSimError(str(exc.cause)) from None
            raise
        except ray.exceptions.WorkerCrashedError:
            raise ImcSimError(f"unit {unit.key} ({unit.checkpoint.spec} on {unit.device.profile.name}, "
                              f"seed {unit.seed}): worker died {self.max_retries + 1} times") from None


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
