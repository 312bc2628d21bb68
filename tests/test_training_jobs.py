"""Training jobs (imc_sim.training.jobs) through the job runners (imc_sim.jobs): cached jobs are not
retrained, bad jobs are refused before anything runs, and a local Ray trains the same checkpoints."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from imc_sim import jobs
from imc_sim.checkpoint import read_checkpoint
from imc_sim.errors import ImcSimError
from imc_sim.jobs import InProcessRunner, Job, JobRunner, RayRunner, Resources
from imc_sim.training.jobs import TrainJob, run_training
from imc_sim.training.loop import TrainArgs
from imc_sim.units import parse_times


def jobs_in(folder: Path, model_dir: Path, glue: Path, seeds=(0, 1), **fields) -> list[TrainJob]:
    fields = {"max_steps": 3, "batch_size": 8, "lr": 0.05, "method_options": {"k": 4}, **fields}
    return [TrainJob(f"grasp-s{s}", TrainArgs(model=str(model_dir), data_dir=str(glue), seed=s, **fields),
                     folder / f"grasp-s{s}.pt")
            for s in seeds]


def state(path: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(path)["state"]


def assert_same_checkpoint(a: Path, b: Path) -> None:
    sa, sb = state(a), state(b)
    assert sa.keys() == sb.keys()
    for name in sa:
        assert torch.equal(sa[name], sb[name]), name
    assert read_checkpoint(a)["metrics"]["metric"] == read_checkpoint(b)["metrics"]["metric"]


class NoRun(JobRunner):
    """A runner that fails if it is started: nothing should be left to run."""

    def __enter__(self) -> JobRunner:
        raise AssertionError("the runner was started")

    def run(self, jobs, desc):
        raise AssertionError("a job was run")


@pytest.fixture(scope="module")
def trained_here(tmp_path_factory, tiny_model_dir, tiny_glue) -> list[TrainJob]:
    jobs = jobs_in(tmp_path_factory.mktemp("here"), tiny_model_dir, tiny_glue)
    done = run_training(jobs, InProcessRunner(progress=False))
    assert (done.planned, done.found, done.ran) == (2, 0, 2)
    return jobs


def test_seeds_differ_and_a_cached_job_is_not_retrained(trained_here):
    first, second = (job.out for job in trained_here)
    assert read_checkpoint(first)["seed"] == 0 and read_checkpoint(second)["seed"] == 1
    assert any(not torch.equal(state(first)[k], state(second)[k]) for k in state(first))
    before = [(job.out.stat().st_mtime_ns, job.out.read_bytes()) for job in trained_here]
    done = run_training(trained_here, NoRun())
    assert (done.planned, done.found, done.ran) == (2, 2, 0)
    assert [(job.out.stat().st_mtime_ns, job.out.read_bytes()) for job in trained_here] == before
    assert not [p for p in first.parent.iterdir() if p.name.endswith(".tmp")]  # no temporary left


def test_fresh_retrains_with_the_same_numbers(trained_here, tmp_path):
    copy = tmp_path / "copy.pt"
    copy.write_bytes(trained_here[0].out.read_bytes())
    job = TrainJob("again", trained_here[0].args, copy)
    assert run_training([job], InProcessRunner(progress=False), fresh=True).ran == 1
    assert_same_checkpoint(copy, trained_here[0].out)


def test_a_cached_checkpoint_of_other_settings_is_refused_before_anything_runs(trained_here, tmp_path):
    first, second = trained_here
    other = TrainJob(second.name, replace(second.args, max_steps=second.args.max_steps + 1), second.out)
    new = TrainJob("new", first.args, tmp_path / "new.pt")
    before = second.out.read_bytes()
    with pytest.raises(ImcSimError, match=f"max_steps: {second.args.max_steps} in the checkpoint"):
        run_training([new, first, other], NoRun())
    assert second.out.read_bytes() == before and not new.out.exists()


def test_bad_jobs_are_refused_before_anything_runs(tiny_model_dir, tiny_glue, tmp_path):
    good = jobs_in(tmp_path, tiny_model_dir, tiny_glue, seeds=(0,))
    with pytest.raises(ImcSimError, match="two training jobs write the same checkpoint"):
        run_training(good * 2, NoRun())
    bad = jobs_in(tmp_path, tiny_model_dir, tiny_glue, seeds=(1,), max_steps=0)
    with pytest.raises(ImcSimError, match=r"TrainArgs.max_steps = 0: must be an integer >= 1"):
        run_training(good + bad, NoRun())
    assert not list(tmp_path.iterdir())


# --- Ray: a local Ray with 2 CPUs for the module --------------------------------------------------

@pytest.fixture(scope="module")
def local_ray():
    try:
        import ray
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but ray is not installed")
        pytest.skip("ray not installed")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,  # as a driver run with
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "2"}})         # OMP_NUM_THREADS=2
    yield ray
    ray.shutdown()


def test_ray_trains_the_same_checkpoints(local_ray, trained_here, tmp_path):
    on_ray = [TrainJob(job.name, job.args, tmp_path / job.out.name) for job in trained_here]
    with RayRunner(progress=False) as runner:  # the Ray this process runs: used, left running
        done = run_training(on_ray, runner)
    assert (done.ran, local_ray.is_initialized()) == (2, True)
    for here, there in zip(trained_here, on_ray, strict=True):
        assert_same_checkpoint(here.out, there.out)


def test_a_ray_job_runs_on_as_many_threads_as_cpus_it_reserved(local_ray):
    """Workers inherit the driver's OMP_NUM_THREADS=2: two such 1-CPU jobs would put four threads
    on the two cores."""
    one_cpu = [Job(torch.get_num_threads, (), f"threads {i}", Resources(cpus=1)) for i in range(2)]
    with RayRunner(progress=False) as runner:
        assert sorted(runner.run(one_cpu, "threads")) == [(0, 1), (1, 1)]
        assert list(runner.run([Job(torch.get_num_threads, (), "both", Resources(cpus=2))], "threads")) \
            == [(0, 2)]


def test_a_user_error_in_a_ray_job_is_one_line_here(local_ray):
    with RayRunner(progress=False) as runner, pytest.raises(ImcSimError) as caught:
        list(runner.run([Job(parse_times, ("",), "times")], "check"))
    assert str(caught.value) == "no drift time given"


def test_a_local_ray_that_fails_to_start_is_one_line(monkeypatch):
    """ray.init raises a bare Exception when its node times out (seen on a loaded machine)."""
    class FailingRay:
        @staticmethod
        def is_initialized() -> bool:
            return False

        @staticmethod
        def init(**_: object) -> None:
            raise Exception("The current node timed out during startup. This could happen because ...\nmore")

    monkeypatch.setattr(jobs, "import_ray", lambda: FailingRay)
    with pytest.raises(ImcSimError, match=r"^could not start a local Ray: The current node timed out during "
                                          r"startup\. This could happen because \.\.\. \(a busy machine"):
        RayRunner(progress=False).__enter__()
