"""The job runners (imc_sim.jobs), training jobs (imc_sim.training.jobs) and sweep executors
(imc_sim.deploy.executors) without starting Ray: a stand-in ``ray`` module in ``sys.modules``
records what it is asked (resources, retries, addresses, puts, cancels) and runs each task in this
process when its result is asked for; addresses are checked against sockets on 127.0.0.1 only."""

from __future__ import annotations

import dataclasses
import operator
import shutil
import socket
import sys
import types
from pathlib import Path

import pytest
import torch
from conftest import closed_port, forged, write_plan_file

from imc_sim.checkpoint import read_checkpoint
from imc_sim.deploy.executors import (
    Executor,
    InProcessExecutor,
    RayExecutor,
    SweepRun,
    _run_shipped,
    _unchanged,
    run_sweep,
)
from imc_sim.deploy.plan import load_plan
from imc_sim.deploy.plan_data import load_data
from imc_sim.deploy.store import read_store
from imc_sim.deploy.unit import ChipRun, UnitResult
from imc_sim.errors import ImcSimError
from imc_sim.jobs import (
    InProcessRunner,
    Job,
    RayRunner,
    Resources,
    check_reachable,
    import_ray,
    on_reserved_threads,
)
from imc_sim.tasks import get_task
from imc_sim.training.jobs import TrainJob, run_training
from imc_sim.training.loop import TrainArgs
from imc_sim.units import parse_times

# --- a stand-in for the ray module ----------------------------------------------------------------


class RayTaskError(Exception):
    """As Ray's: an exception raised inside a task, its ``cause`` the original."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"task raised {cause!r}")
        self.cause = cause


class WorkerCrashedError(Exception):
    """As Ray's: the worker running a task died (after its retries)."""


class Ref:
    def __init__(self, n: int) -> None:
        self.n = n

    def __repr__(self) -> str:
        return f"Ref({self.n})"


class FakeRay(types.ModuleType):
    """``ray`` as RayRunner uses it. Tasks finish last-submitted first; a task runs when its result
    is asked for (``get``), with the objects put in the store in place of their refs (as Ray passes
    them); with ``crash`` every worker dies instead."""

    exceptions = types.SimpleNamespace(RayTaskError=RayTaskError, WorkerCrashedError=WorkerCrashedError)

    def __init__(self, initialized: bool = False, init_error: Exception | None = None,
                 crash: bool = False) -> None:
        super().__init__("ray")
        self.initialized, self.init_error, self.crash = initialized, init_error, crash
        self.inits: list[dict] = []
        self.shutdowns = 0
        self.remote_fns: list = []
        self.tasks: dict[Ref, tuple[dict, tuple]] = {}  # submitted: options, arguments
        self.objects: dict[Ref, object] = {}
        self.puts: list[object] = []
        self.cancelled: list[tuple[Ref, bool]] = []
        self.count = 0

    def _ref(self) -> Ref:
        self.count += 1
        return Ref(self.count)

    def init(self, **kwargs) -> None:
        self.inits.append(kwargs)
        if self.init_error is not None:
            raise self.init_error
        self.initialized = True

    def is_initialized(self) -> bool:
        return self.initialized

    def shutdown(self) -> None:
        self.shutdowns += 1
        self.initialized = False

    def remote(self, fn):
        self.remote_fns.append(fn)
        ray = self

        class Task:
            @staticmethod
            def options(**options):
                class Submit:
                    @staticmethod
                    def remote(*args):
                        ref = ray._ref()
                        ray.tasks[ref] = (options, args)
                        return ref
                return Submit
        return Task

    def put(self, value) -> Ref:
        ref = self._ref()
        self.objects[ref] = value
        self.puts.append(value)
        return ref

    def wait(self, refs, *, num_returns=1, timeout=None):
        if not isinstance(num_returns, int) or not 1 <= num_returns <= len(refs):
            raise ValueError(f"num_returns {num_returns!r} for {len(refs)} refs")
        ordered = sorted(refs, key=lambda r: -r.n)
        return ordered[:num_returns], ordered[num_returns:]

    def get(self, ref):
        _, args = self.tasks[ref]
        if self.crash:
            raise WorkerCrashedError("the worker died")
        fn = self.remote_fns[-1]
        try:
            return fn(*[self.objects[a] if isinstance(a, Ref) else a for a in args])
        except Exception as exc:
            raise RayTaskError(exc) from exc

    def cancel(self, ref, *, force=False, recursive=True) -> None:
        self.cancelled.append((ref, force))

    def options_of(self) -> list[dict]:
        return [options for options, _ in self.tasks.values()]


@pytest.fixture(autouse=True)
def torch_threads():
    """A task sets the torch thread count of whoever runs it: here, this process."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def fake_ray(monkeypatch, **kwargs) -> FakeRay:
    ray = FakeRay(**kwargs)
    monkeypatch.setitem(sys.modules, "ray", ray)
    return ray


@pytest.fixture
def listening():
    """HOST:PORT of a socket listening on 127.0.0.1."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield f"127.0.0.1:{server.getsockname()[1]}"


def sums(n: int) -> list[Job[int]]:
    return [Job(operator.add, (i, 10), f"sum {i}") for i in range(n)]


# --- imc_sim.jobs -----------------------------------------------------------------------------------


def test_reserved_threads_are_the_cpus_of_the_job():
    assert on_reserved_threads(2, torch.get_num_threads) == 2
    assert on_reserved_threads(1, operator.mul, 6, 7) == 42
    assert torch.get_num_threads() == 1


def test_in_process_runner_yields_in_order_with_a_progress_bar(capsys):
    assert list(InProcessRunner().run(sums(2), "demo")) == [(0, 10), (1, 11)]
    err = capsys.readouterr().err
    assert "demo: 100%" in err and "| 2/2 [" in err
    assert list(InProcessRunner(progress=False).run(sums(2), "demo")) == [(0, 10), (1, 11)]
    assert capsys.readouterr().err == ""


def test_ray_absent_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    message = 'Ray is not installed: pip install "imc-sim[ray]"'
    with pytest.raises(ImcSimError) as caught:
        import_ray()
    assert str(caught.value) == message
    with pytest.raises(ImcSimError) as caught:
        RayRunner(progress=False).__enter__()
    assert str(caught.value) == message


@pytest.mark.parametrize("address", ["auto", "local"])
def test_auto_and_local_need_no_connection(address, monkeypatch):
    def no_connection(*args, **kwargs):
        raise AssertionError(f"connected to {args}")

    monkeypatch.setattr(socket, "create_connection", no_connection)
    assert check_reachable(address) is None


@pytest.mark.parametrize("address", ["127.0.0.1:abc", ":6379", "127.0.0.1", "127.0.0.1:", "ray://:6379",
                                     "127.0.0.1:99999", "ray://127.0.0.1:65536", "127.0.0.1:0"])
def test_an_address_that_is_not_host_port_is_refused(address, monkeypatch):
    def no_connection(*args, **kwargs):  # a port out of range is refused before any connection
        raise AssertionError(f"connected to {args}")

    monkeypatch.setattr(socket, "create_connection", no_connection)
    with pytest.raises(ImcSimError) as caught:
        check_reachable(address)
    assert str(caught.value) == (f"Ray address {address!r} is not HOST:PORT with a port from 1 to 65535 "
                                 "(or ray://HOST:PORT, auto)")


def test_the_host_and_port_connected_to_and_the_timeout(monkeypatch):
    calls = []

    class Connection:
        def close(self) -> None:
            calls.append("closed")

    def create_connection(address, timeout="no timeout given"):
        calls.append((address, timeout))
        return Connection()

    monkeypatch.setattr(socket, "create_connection", create_connection)
    check_reachable("ray://127.0.0.1:10001")
    check_reachable("127.0.0.1:6379", timeout=0.25)
    assert calls == [(("127.0.0.1", 10001), 3.0), "closed", (("127.0.0.1", 6379), 0.25), "closed"]
    calls.clear()
    check_reachable("[::1]:6379")  # IPv6 as Ray writes it: the brackets are not part of the host
    check_reachable("ray://[::1]:10001")
    assert calls == [(("::1", 6379), 3.0), "closed", (("::1", 10001), 3.0), "closed"]


def test_a_listening_port_is_reachable_a_closed_one_is_one_line(listening):
    assert check_reachable(listening) is None
    assert check_reachable(f"ray://{listening}") is None
    port = closed_port()
    with pytest.raises(ImcSimError) as caught:
        check_reachable(f"ray://127.0.0.1:{port}")
    assert str(caught.value) == f"cannot reach Ray at ray://127.0.0.1:{port}: Connection refused"


def test_an_error_without_strerror_is_said_as_it_is(monkeypatch):
    def create_connection(address, timeout=None):
        raise TimeoutError("timed out")

    monkeypatch.setattr(socket, "create_connection", create_connection)
    with pytest.raises(ImcSimError) as caught:
        check_reachable("127.0.0.1:6379")
    assert str(caught.value) == "cannot reach Ray at 127.0.0.1:6379: timed out"


def test_an_address_is_connected_to_and_shut_down_on_exit(monkeypatch, listening):
    ray = fake_ray(monkeypatch)
    with RayRunner(listening, progress=False):
        assert (ray.inits, ray.shutdowns) == ([{"address": listening, "log_to_driver": False}], 0)
    assert ray.shutdowns == 1


def test_a_closed_address_is_refused_before_ray_is_asked(monkeypatch):
    ray = fake_ray(monkeypatch)
    port = closed_port()
    with pytest.raises(ImcSimError, match=f"^cannot reach Ray at 127.0.0.1:{port}: Connection refused$"):
        RayRunner(f"127.0.0.1:{port}", progress=False).__enter__()
    assert ray.inits == []


@pytest.mark.parametrize("error, said", [
    (ConnectionError("could not connect to the GCS\nmore detail"), "could not connect to the GCS"),
    (RuntimeError("  "), "RuntimeError"),
    (ValueError("v" * 300), "v" * 200),
])
def test_a_failed_connection_is_one_line(error, said, monkeypatch, listening):
    ray = fake_ray(monkeypatch, init_error=error)
    runner = RayRunner(listening, progress=False)
    with pytest.raises(ImcSimError) as caught:
        runner.__enter__()
    assert str(caught.value) == f"cannot connect to Ray at {listening}: {said}"
    runner.__exit__(None, None, None)
    assert ray.shutdowns == 0


def test_a_local_ray_is_started_and_shut_down(monkeypatch):
    ray = fake_ray(monkeypatch)
    with RayRunner(progress=False):
        assert (ray.inits, ray.shutdowns) == ([{"log_to_driver": False}], 0)
    assert ray.shutdowns == 1


def test_a_running_ray_is_used_and_left_running_also_when_reused(monkeypatch):
    ray = fake_ray(monkeypatch, initialized=True)
    runner = RayRunner(progress=False)
    with runner:
        pass
    assert (ray.inits, ray.shutdowns, ray.initialized) == ([], 0, True)
    ray.initialized = False
    with runner:  # starts its own this time, and stops it
        pass
    assert (len(ray.inits), ray.shutdowns) == (1, 1)
    ray.init()  # the user starts a Ray of their own, which the runner must leave running
    with runner:
        pass
    assert (len(ray.inits), ray.shutdowns, ray.initialized) == (2, 1, True)


@pytest.mark.parametrize("error, said", [
    (Exception(""), "Exception"),
    (Exception("n" * 250 + "\nmore"), "n" * 200),
])
def test_a_local_ray_that_fails_to_start_is_one_line(error, said, monkeypatch):
    fake_ray(monkeypatch, init_error=error)
    with pytest.raises(ImcSimError) as caught:
        RayRunner(progress=False).__enter__()
    assert str(caught.value) == (f"could not start a local Ray: {said} (a busy machine: retry, "
                                 "or run without --ray)")


def test_each_job_a_task_with_its_resources_results_as_they_finish(monkeypatch, capsys):
    ray = fake_ray(monkeypatch, initialized=True)
    jobs = [*sums(2), Job(torch.get_num_threads, (), "threads", Resources(cpus=2, gpus=0.5))]
    with RayRunner() as runner:
        assert list(runner.run(jobs, "demo")) == [(2, 2), (1, 11), (0, 10)]
    assert ray.remote_fns == [on_reserved_threads]
    assert ray.options_of() == [{"num_cpus": 1, "num_gpus": 0.0, "max_retries": 3}] * 2 + [
        {"num_cpus": 2, "num_gpus": 0.5, "max_retries": 3}]
    assert [args for _, args in ray.tasks.values()] == [
        (1, operator.add, 0, 10), (1, operator.add, 1, 10), (2, torch.get_num_threads)]
    err = capsys.readouterr().err
    assert "demo (ray): 100%" in err and "| 3/3 [" in err
    assert ray.cancelled == []


def test_ray_runner_without_progress_prints_nothing_and_passes_its_retries(monkeypatch, capsys):
    ray = fake_ray(monkeypatch, initialized=True)
    with RayRunner(max_retries=0, progress=False) as runner:
        assert list(runner.run(sums(1), "demo")) == [(0, 10)]
    assert ray.options_of() == [{"num_cpus": 1, "num_gpus": 0.0, "max_retries": 0}]
    assert capsys.readouterr().err == ""


def test_stopping_early_cancels_the_unfinished_tasks(monkeypatch):
    ray = fake_ray(monkeypatch, initialized=True)
    with RayRunner(progress=False) as runner:
        results = runner.run(sums(3), "demo")
        assert next(results) == (2, 12)
        results.close()
    first, second, _ = ray.tasks
    assert ray.cancelled == [(first, True), (second, True)]


def test_a_user_error_in_a_task_is_the_same_one_line_error_here(monkeypatch):
    fake_ray(monkeypatch, initialized=True)
    with RayRunner(progress=False) as runner, pytest.raises(ImcSimError) as caught:
        list(runner.run([Job(parse_times, ("",), "times")], "check"))
    assert str(caught.value) == "no drift time given"
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_another_error_in_a_task_stays_ray_s(monkeypatch):
    fake_ray(monkeypatch, initialized=True)
    with RayRunner(progress=False) as runner, pytest.raises(RayTaskError) as caught:
        list(runner.run([Job(operator.truediv, (1, 0), "divide")], "check"))
    assert isinstance(caught.value.cause, ZeroDivisionError)


@pytest.mark.parametrize("retries, times", [(None, 4), (0, 1), (2, 3)])
def test_a_worker_that_died_every_time_is_one_line(retries, times, monkeypatch):
    ray = fake_ray(monkeypatch, initialized=True, crash=True)
    runner = RayRunner(progress=False) if retries is None else RayRunner(max_retries=retries, progress=False)
    with runner, pytest.raises(ImcSimError) as caught:
        list(runner.run(sums(3), "demo"))
    assert str(caught.value) == f"sum 2: worker died {times} times"
    first, second, _ = ray.tasks
    assert ray.cancelled == [(first, True), (second, True)]


# --- imc_sim.training.jobs ----------------------------------------------------------------------------


def train_args(model_dir: Path, glue: Path, seed: int = 0) -> TrainArgs:
    return TrainArgs(model=str(model_dir), data_dir=str(glue), seed=seed, max_steps=1, batch_size=8, lr=0.05,
                     method_options={"k": 4})


def test_the_same_checkpoint_twice_is_refused_by_its_resolved_path(tmp_path, monkeypatch):
    args = TrainArgs(model="m", data_dir="d", max_steps=1, method_options={"k": 4})
    (tmp_path / "runs").mkdir()
    monkeypatch.chdir(tmp_path)
    jobs = [TrainJob("a", args, Path("runs/x.pt")), TrainJob("b", args, tmp_path / "y.pt"),
            TrainJob("c", args, Path("runs/../runs/x.pt"))]
    with pytest.raises(ImcSimError) as caught:
        run_training(jobs, InProcessRunner(progress=False))
    assert str(caught.value) == ("two training jobs write the same checkpoint "
                                 f"{(tmp_path / 'runs' / 'x.pt').resolve()}")


def test_a_job_on_ray_trains_quietly_and_its_checkpoint_is_written(monkeypatch, tiny_model_dir, tiny_glue,
                                                                   tmp_path, capsys):
    ray = fake_ray(monkeypatch)
    job = TrainJob("solo", train_args(tiny_model_dir, tiny_glue, seed=3), tmp_path / "solo.pt")
    done = run_training([job], RayRunner(progress=False))
    assert (done.planned, done.found, done.ran) == (1, 0, 1)
    assert read_checkpoint(job.out)["seed"] == 3 and read_checkpoint(job.out)["metrics"]["steps"] == 1
    assert "train grasp" not in capsys.readouterr().err
    assert (len(ray.inits), ray.shutdowns) == (1, 1)
    assert [p.name for p in tmp_path.iterdir()] == ["solo.pt"]


def test_training_jobs_ask_for_their_resources_and_are_named_in_errors(monkeypatch, tmp_path, capsys):
    ray = fake_ray(monkeypatch, initialized=True, crash=True)
    args = TrainArgs(model="m", data_dir="d", max_steps=1, method_options={"k": 4})
    jobs = [TrainJob("grasp-s0", args, tmp_path / "a.pt", Resources(cpus=2, gpus=0.5))]
    with pytest.raises(ImcSimError) as caught:
        run_training(jobs, RayRunner(max_retries=1))
    assert str(caught.value) == "training job grasp-s0: worker died 2 times"
    assert ray.options_of() == [{"num_cpus": 2, "num_gpus": 0.5, "max_retries": 1}]
    assert capsys.readouterr().err.lstrip("\r").startswith("train (ray): ")
    assert not list(tmp_path.iterdir())


# --- imc_sim.deploy.executors ---------------------------------------------------------------------------


@pytest.fixture
def plan_files(tiny_checkpoint, tiny_glue, tmp_path) -> tuple[Path, Path, Path]:
    """Two checkpoints (the tiny one and one with another seed) and a GLUE folder, all copies of
    the session's, free to change."""
    a = tmp_path / "a.pt"
    shutil.copy(tiny_checkpoint, a)
    b = forged(tiny_checkpoint, tmp_path / "b.pt", seed=7)
    glue = tmp_path / "glue"
    shutil.copytree(tiny_glue, glue)
    return a, b, glue


def plan_of(folder: Path, checkpoints, glue: Path, **fields):
    return load_plan(write_plan_file(folder, checkpoints=[str(c) for c in checkpoints], data_dir=str(glue),
                                     **fields))


def test_unchanged_returns_the_bytes_or_refuses_changed_ones(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc")
    digest = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # SHA-256 of abc
    assert _unchanged(path, digest, "the file") == b"abc"
    path.write_bytes(b"abd")
    with pytest.raises(ImcSimError) as caught:
        _unchanged(path, digest, "the file")
    assert str(caught.value) == "the file changed since the plan was read"


def test_each_checkpoint_and_the_dev_file_are_put_once(plan_files, tmp_path):
    a, b, glue = plan_files
    units = plan_of(tmp_path, [a, b], glue, seeds=2).units()
    assert len(units) == 4
    ray = FakeRay()
    refs = RayExecutor(progress=False)._ship(ray, units)
    dev = (glue / "SST-2" / "dev.tsv").read_bytes()
    assert ray.puts == [a.read_bytes(), b.read_bytes(), dev]
    assert refs.keys() == {units[0].checkpoint.sha256, units[2].checkpoint.sha256, "dev"}
    shipped = [ray.objects[refs[u.checkpoint.sha256]] for u in units]
    assert shipped == [a.read_bytes()] * 2 + [b.read_bytes()] * 2
    assert ray.objects[refs["dev"]] == dev


def test_no_units_or_the_hub_ship_no_dev_file(plan_files, tmp_path, monkeypatch):
    a, _, glue = plan_files
    ray = FakeRay()
    assert RayExecutor(progress=False)._ship(ray, []) == {"dev": None}
    monkeypatch.delenv("IMC_SIM_DATA", raising=False)
    hub = load_data({}, tmp_path, [get_task("sst2")], None)
    [unit] = [dataclasses.replace(u, data=hub) for u in plan_of(tmp_path, [a], glue, seeds=1).units()]
    refs = RayExecutor(progress=False)._ship(ray, [unit])
    assert ray.puts == [a.read_bytes()]
    assert refs.keys() == {unit.checkpoint.sha256, "dev"} and refs["dev"] is None
    assert ray.objects[refs[unit.checkpoint.sha256]] == a.read_bytes()


def test_a_checkpoint_or_dev_file_changed_after_the_plan_is_refused(plan_files, tmp_path):
    a, b, glue = plan_files
    units = plan_of(tmp_path, [a, b], glue, seeds=1).units()
    dev = glue / "SST-2" / "dev.tsv"
    dev.write_bytes(dev.read_bytes() + b"one more\t1\n")
    with pytest.raises(ImcSimError) as caught:
        RayExecutor(progress=False)._ship(FakeRay(), units)
    assert str(caught.value) == f"dev file {dev} changed since the plan was read"
    b.write_bytes(b.read_bytes() + b"\0")
    with pytest.raises(ImcSimError) as caught:
        RayExecutor(progress=False)._ship(FakeRay(), units)
    assert str(caught.value) == f"checkpoint {b} changed since the plan was read"


@pytest.mark.parametrize("kwargs, retries, bar", [({}, 3, True),
                                                  ({"max_retries": 1, "progress": False}, 1, False)])
def test_ray_units_ask_for_their_resources_and_are_named_in_errors(kwargs, retries, bar, plan_files, tmp_path,
                                                                   monkeypatch, capsys):
    a, b, glue = plan_files
    units = plan_of(tmp_path, [a, b], glue, seeds=1, resources={"cpus": 2, "gpus": 0.5}).units()
    ray = fake_ray(monkeypatch, initialized=True, crash=True)
    with RayExecutor(**kwargs) as executor, pytest.raises(ImcSimError) as caught:
        list(executor.run(units))
    last = units[1]
    assert str(caught.value) == f"unit {last.key} ({b} on pcm, seed 0): worker died {retries + 1} times"
    assert ray.options_of() == [{"num_cpus": 2, "num_gpus": 0.5, "max_retries": retries}] * 2
    ckpt_a, ckpt_b, dev = ray.objects
    assert [args for _, args in ray.tasks.values()] == [(2, _run_shipped, units[0], ckpt_a, dev),
                                                        (2, _run_shipped, units[1], ckpt_b, dev)]
    assert ("sweep (ray): " in capsys.readouterr().err) == bar


def test_shipped_bytes_give_the_numbers_of_the_files_themselves(plan_files, tmp_path, monkeypatch, capsys):
    a, _, glue = plan_files
    [unit] = plan_of(tmp_path, [a], glue, seeds=1, eval_limit=4).units()
    [here] = InProcessExecutor().run([unit])
    err = capsys.readouterr().err
    assert "sweep: 100%" in err and "| 1/1 [" in err
    ray = fake_ray(monkeypatch, initialized=True)
    with RayExecutor(progress=False) as executor:
        [there] = executor.run([unit])
    assert ray.remote_fns == [on_reserved_threads]
    assert (there.key, there.run) == (here.key, here.run)
    unshipped = _run_shipped(unit, a.read_bytes(), None)  # the dev file read where it is
    assert (unshipped.key, unshipped.run) == (here.key, here.run)


def test_in_process_executor_without_progress_prints_nothing(capsys):
    assert list(InProcessExecutor(progress=False).run([])) == []
    assert capsys.readouterr().err == ""


class MadeUp(Executor):
    """A stand-in executor: records whether it was started and the seeds of the units it is given,
    and makes up each unit's numbers."""

    def __init__(self) -> None:
        super().__init__(progress=False)
        self.started, self.seeds = 0, []

    def __enter__(self) -> MadeUp:
        self.started += 1
        return self

    def run(self, units):
        for u in units:
            self.seeds.append(u.seed)
            c = u.checkpoint
            yield UnitResult(u.key, u.entry(), c.name, c.method, c.device_trained, c.task.name, u.times,
                             ChipRun("accuracy", 0.75, (0.5, 0.25)), 0.0)


def test_run_sweep_runs_only_units_not_in_the_store_and_counts_them(plan_files, tmp_path):
    a, _, glue = plan_files
    store = tmp_path / "store.jsonl"
    first = MadeUp()
    assert run_sweep(plan_of(tmp_path, [a], glue, seeds=2), store, first) == SweepRun(2, 0, 2)
    assert (first.started, first.seeds) == (1, [0, 1])
    assert sorted((r.entry["seed"], r.t_seconds, r.metric) for r in read_store(store)) == [
        (0, 1.0, 0.5), (0, 31536000.0, 0.25), (1, 1.0, 0.5), (1, 31536000.0, 0.25)]  # 1 s, 1 y (365 d)
    before = store.read_bytes()
    again = MadeUp()
    assert run_sweep(plan_of(tmp_path, [a], glue, seeds=2), store, again) == SweepRun(2, 2, 0)
    assert (again.started, again.seeds, store.read_bytes()) == (0, [], before)
    grown = MadeUp()
    assert run_sweep(plan_of(tmp_path, [a], glue, seeds=3), store, grown) == SweepRun(3, 2, 1)
    assert (grown.started, grown.seeds) == (1, [2])
    assert store.read_bytes().startswith(before) and len(read_store(store)) == 6
