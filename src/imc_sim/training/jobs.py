"""Training jobs: fine-tuning runs (each a :class:`TrainArgs`, its seed included) whose checkpoints
go to given paths, run by a job runner (:mod:`imc_sim.jobs`): in this process or each one a Ray task.

A job returns its checkpoint as bytes (on Ray through the object store) and this process writes
them to the job's path atomically (:func:`imc_sim.atomic.write_atomic`), as each job finishes. So
only this process writes the cache (no checkpoint path needs to be shared with workers), and a job
that is killed or retried, or this process killed while writing, never leaves half a checkpoint:
the path holds the whole file or nothing. The bytes are kilobytes for a PEFT adapter and up to a
few hundred MB for full fine-tuning, which the object store carries. What is assumed: a job reads
its training data and base model where its :class:`TrainArgs` says (``data_dir``, ``model``, a
data source), so on Ray those paths must be absolute and readable by the workers: true on a local
Ray, on a cluster a shared file system or the hub. A job whose checkpoint exists is not run again
(the cache of :mod:`imc_sim.training.cache`, which checks that it is a run of the job's arguments).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from imc_sim.atomic import write_atomic
from imc_sim.checkpoint import save_checkpoint
from imc_sim.errors import ImcSimError
from imc_sim.jobs import Job, JobRunner, Resources
from imc_sim.training.cache import check_all_cached
from imc_sim.training.loop import TrainArgs, train


@dataclass(frozen=True)
class TrainJob:
    """One training run: ``args`` (with its seed) -> the checkpoint at ``out``; what a Ray worker
    is asked for (``resources``)."""

    name: str
    args: TrainArgs
    out: Path
    resources: Resources = Resources()


@dataclass(frozen=True)
class TrainingRun:
    """What one :func:`run_training` did: jobs given, found in the cache, and trained now."""

    planned: int
    found: int
    ran: int


def checkpoint_bytes(args: TrainArgs) -> bytes:
    """The job itself: train ``args`` and return the checkpoint file's bytes."""
    with tempfile.TemporaryDirectory(prefix="imc-sim-train-") as tmp:
        path = Path(tmp) / "model.pt"
        save_checkpoint(path, train(args, progress=False).payload)
        return path.read_bytes()


def run_training(jobs: Sequence[TrainJob], runner: JobRunner, fresh: bool = False) -> TrainingRun:
    """Train the jobs whose checkpoint is not there yet (every one with ``fresh``), writing each
    checkpoint as its job finishes. Every job's arguments are checked before anything starts; the
    runner is started only when there is work."""
    paths = [job.out.resolve() for job in jobs]
    repeated = sorted({str(p) for p in paths if paths.count(p) > 1})
    if repeated:
        raise ImcSimError(f"two training jobs write the same checkpoint {repeated[0]}")
    for job in jobs:
        job.args.validate()
    check_all_cached([(job.out, job.args) for job in jobs], fresh)
    todo = [job for job in jobs if fresh or not job.out.exists()]
    if todo:
        with runner:
            work = [Job(checkpoint_bytes, (job.args,), f"training job {job.name}", job.resources)
                    for job in todo]
            for index, data in runner.run(work, "train"):
                write_atomic(todo[index].out, lambda tmp, data=data: tmp.write_bytes(data))
    return TrainingRun(len(jobs), len(jobs) - len(todo), len(todo))
