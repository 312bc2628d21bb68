"""Run picklable jobs and yield their results as they finish: in this process, or each job a Ray task.

The layer under both sweep units (:mod:`imc_sim.deploy.executors`) and training jobs
(:mod:`imc_sim.training.jobs`), and the one place that starts, connects to and stops Ray. A
:class:`Job` is a function and its arguments, both picklable (a function is pickled by reference:
it must live in an importable module). On Ray each job is one task declaring its CPUs and GPUs and
running on as many torch threads as it declares CPUs (a worker inherits the driver's
``OMP_NUM_THREADS``: two 2-thread workers on 2 cores would oversubscribe them); a job whose worker
dies is retried by Ray (``max_retries``), and an :class:`ImcSimError` raised in a job becomes the
same one-line error here. Ray is imported only when a Ray runner starts.
"""

from __future__ import annotations

import socket
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Generic, TypeVar

from tqdm.auto import tqdm

from imc_sim.errors import ImcSimError
from imc_sim.heap import keep_freed_memory

CONNECT_TIMEOUT_S = 3.0
R = TypeVar("R")


@dataclass(frozen=True)
class Resources:
    """What one job asks of a Ray worker (in this process it runs on the process's own threads)."""

    cpus: int = 1
    gpus: float = 0.0


@dataclass(frozen=True)
class Job(Generic[R]):
    """``fn(*args)``, named by ``label`` in errors, asking a Ray worker for ``resources``."""

    fn: Callable[..., R]
    args: tuple[Any, ...]
    label: str
    resources: Resources = Resources()


def on_reserved_threads(cpus: int, fn: Callable[..., R], *args: Any) -> R:
    """``fn(*args)`` on ``cpus`` torch threads, freed memory kept in the worker (:mod:`imc_sim.heap`):
    how a Ray task runs its job."""
    import torch

    keep_freed_memory()
    torch.set_num_threads(cpus)
    return fn(*args)


class JobRunner(ABC):
    """Runs jobs; a context manager around whatever it needs started and stopped."""

    def __init__(self, progress: bool = True) -> None:
        self.progress = progress

    @abstractmethod
    def run(self, jobs: Sequence[Job[R]], desc: str) -> Iterator[tuple[int, R]]:
        """Yield ``(index in jobs, result)`` once per job, in the order they finish."""

    def __enter__(self) -> JobRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class InProcessRunner(JobRunner):
    """One job after another in this process."""

    def run(self, jobs: Sequence[Job[R]], desc: str) -> Iterator[tuple[int, R]]:
        for index, job in enumerate(tqdm(jobs, desc=desc, disable=not self.progress)):
            yield index, job.fn(*job.args)


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
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ImcSimError(f"Ray address {address!r} is not HOST:PORT with a port from 1 to 65535 "
                          "(or ray://HOST:PORT, auto)")
    if host.startswith("[") and host.endswith("]"):  # IPv6 as Ray writes it: [::1]:6379
        host = host[1:-1]
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ImcSimError(f"cannot reach Ray at {address}: {exc.strerror or exc}") from None


class RayRunner(JobRunner):
    """Each job a Ray task on a local Ray (started on entry, or the one this process already runs,
    which is left running) or on the cluster at ``address``."""

    def __init__(self, address: str | None = None, max_retries: int = 3, progress: bool = True) -> None:
        super().__init__(progress)
        self.address = address
        self.max_retries = max_retries
        self._started = False

    def __enter__(self) -> RayRunner:
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
            try:
                ray.init(log_to_driver=False)
            except Exception as exc:  # noqa: BLE001 - Ray raises a bare Exception on a failed start
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise ImcSimError(f"could not start a local Ray: {first[:200]} (a busy machine: retry, "
                                  "or run without --ray)") from None
            self._started = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._started:
            import_ray().shutdown()
            self._started = False

    def run(self, jobs: Sequence[Job[R]], desc: str) -> Iterator[tuple[int, R]]:
        ray = import_ray()
        task = ray.remote(on_reserved_threads)
        pending = {}
        for index, job in enumerate(jobs):
            ref = task.options(num_cpus=job.resources.cpus, num_gpus=job.resources.gpus,
                               max_retries=self.max_retries).remote(job.resources.cpus, job.fn, *job.args)
            pending[ref] = index
        try:
            with tqdm(total=len(pending), desc=f"{desc} (ray)", disable=not self.progress) as bar:
                while pending:
                    done, _ = ray.wait(list(pending), num_returns=1)
                    index = pending.pop(done[0])
                    yield index, self._result(ray, done[0], jobs[index])
                    bar.update()
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)

    def _result(self, ray: ModuleType, ref: Any, job: Job[R]) -> R:
        """The task's result; a user error inside it becomes the same one-line error here."""
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            if isinstance(exc.cause, ImcSimError):
                raise ImcSimError(str(exc.cause)) from None
            raise
        except ray.exceptions.WorkerCrashedError:
            raise ImcSimError(f"{job.label}: worker died {self.max_retries + 1} times") from None
