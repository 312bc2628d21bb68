"""imc-sim sweep: plan, results store, resuming, growing, bad input; in-process and on a local Ray."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from conftest import closed_port, forged, write_plan_file

from imc_sim import __version__
from imc_sim.checkpoint import read_checkpoint
from imc_sim.cli import main
from imc_sim.crossbar.mapping import Deployment
from imc_sim.deploy.executors import InProcessExecutor, run_sweep
from imc_sim.deploy.plan import load_plan
from imc_sim.deploy.store import read_store
from imc_sim.deploy.unit import FAULT_ENV, inject_fault
from imc_sim.devices.profile import shipped_profiles


@pytest.fixture(scope="module")
def noisy_device(tmp_path_factory) -> Path:
    """The Gaussian profile with sigma = 0.5: accuracy on the tiny dev set differs from seed to seed."""
    raw = yaml.safe_load(shipped_profiles()["gaussian"].read_text())
    raw["name"] = "noisy"
    raw["programming"]["sigma"] = 0.5
    path = tmp_path_factory.mktemp("devices") / "noisy.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def write_plan(folder: Path, ckpts, glue, **fields) -> Path:
    return write_plan_file(folder, **{"checkpoints": [str(c) for c in ckpts], "seeds": 2,
                                      "data_dir": str(glue), **fields})


def sweep(plan: Path, *extra: str) -> int:
    return main(["sweep", str(plan), "--quiet", *extra])


def store_of(plan: Path) -> Path:
    return plan.with_suffix(".results.jsonl")


def metrics(store: Path) -> dict[tuple[str, float], float]:
    """(unit, time) -> metric; fails on any (unit, time) stored twice."""
    records = read_store(store)
    counts = Counter((r.unit, r.t_seconds) for r in records)
    assert max(counts.values()) == 1, "a unit was stored twice"
    return {(r.unit, r.t_seconds): r.metric for r in records}


def test_sweep_store_summary_and_the_same_numbers_as_deploy(tiny_checkpoint, tiny_glue, noisy_device,
                                                            tmp_path, capsys):
    plan = write_plan(tmp_path, [tiny_checkpoint], tiny_glue, devices=[str(noisy_device)], seeds=3)
    out = tmp_path / "s.json"
    assert sweep(plan, "--json", str(out), "--plot", str(tmp_path / "s.png")) == 0
    printed = capsys.readouterr().out
    assert "3 units: 0 already in" in printed and "sst2 on noisy (3 seeds)" in printed and "1y" in printed
    lines = [json.loads(line) for line in store_of(plan).read_text().splitlines()]
    assert len(lines) == 3 * 2 and {line["imc_sim_version"] for line in lines} == {__version__}
    assert {line["entry"]["seed"] for line in lines} == {0, 1, 2}
    summary = json.loads(out.read_text())["devices"][0]
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    # deploy programs seeds 0..2 of the same device in one process: the same chips, the same numbers
    assert main(["deploy", str(tiny_checkpoint), "--device", str(noisy_device), "--drift", "1s", "1y",
                 "--seeds", "3", "--data-dir", str(tiny_glue), "--json", str(tmp_path / "d.json"),
                 "--quiet"]) == 0
    deployed = json.loads((tmp_path / "d.json").read_text())
    assert summary["checkpoints"][0]["times"] == deployed["times"]
    assert len(set(deployed["times"][0]["metrics"])) > 1  # the seeds really differ


def test_rerun_skips_and_a_grown_plan_runs_only_new_units(tiny_checkpoint, tiny_glue, noisy_device,
                                                          tmp_path, capsys):
    plan = write_plan(tmp_path, [tiny_checkpoint], tiny_glue, seeds=1)
    assert sweep(plan) == 0
    first = store_of(plan).read_bytes()
    capsys.readouterr()
    assert sweep(plan) == 0
    assert "1 units: 1 already in" in capsys.readouterr().out
    assert store_of(plan).read_bytes() == first
    write_plan(tmp_path, [tiny_checkpoint], tiny_glue, seeds=2, devices=["pcm", str(noisy_device)])
    assert sweep(plan) == 0
    assert "4 units: 1 already in" in capsys.readouterr().out
    assert store_of(plan).read_bytes().startswith(first)
    assert len(metrics(store_of(plan))) == 4 * 2


def test_a_unit_on_a_static_chip_calibrates_on_its_limited_dev_set_as_deploy_does(
        tiny_checkpoint, tiny_glue, noisy_device, tmp_path, monkeypatch):
    """The checkpoint's training file is here, yet a unit calibrates on the dev set (its numbers may
    not depend on the machine); its eval_limit holds for the digital metric and the chip's alike;
    its store lines name the checkpoint, method, device training and task, and its own time."""
    raw = yaml.safe_load(noisy_device.read_text())
    raw["periphery"] = {**raw["periphery"], "input_range": "static", "noise_management": "none",
                        "tile_rows": 16, "tile_cols": 16}
    (tmp_path / "static.yaml").write_text(yaml.safe_dump(raw))
    chip = str(tmp_path / "static.yaml")
    args = read_checkpoint(tiny_checkpoint)["train_args"]
    aware = forged(tiny_checkpoint, tmp_path / "aware.pt", train_args={**args, "device": "pcm",
                                                                       "drift": "1h"})
    sources = []
    calibrate = Deployment.calibrate
    monkeypatch.setattr(Deployment, "calibrate", lambda self, batches, source="": (
        sources.append((source, len(batches))), calibrate(self, batches, source))[1])
    plan = load_plan(write_plan(tmp_path, [aware], tiny_glue, devices=[chip], seeds=1, eval_limit=5))
    start = time.perf_counter()
    run_sweep(plan, tmp_path / "s.jsonl", InProcessExecutor(progress=False))
    wall = time.perf_counter() - start
    assert sources == [("dev set", 1)]
    records = read_store(tmp_path / "s.jsonl")
    assert {(r.checkpoint_name, r.method, r.device_trained, r.task) for r in records} == {
        ("aware", "grasp", "pcm @ 1h", "sst2")}
    assert all(0 < r.unit_seconds <= wall for r in records)
    assert main(["deploy", str(aware), "--device", chip, "--drift", "1s", "1y", "--seeds", "1",
                 "--input-ranges", "dev", "--eval-limit", "5", "--data-dir", str(tiny_glue),
                 "--json", str(tmp_path / "d.json"), "--quiet"]) == 0
    deployed = json.loads((tmp_path / "d.json").read_text())
    assert {r.digital_metric for r in records} == {deployed["digital_metric"]}
    assert [r.metric for r in records] == [t["metrics"][0] for t in deployed["times"]]
    assert deployed["dev_examples"] == 5


def test_the_test_fault_ends_the_process_once_then_never_again(tmp_path, monkeypatch):
    exits = []

    def exit_(code):
        exits.append(code)
        raise SystemExit(code)
    monkeypatch.setattr(os, "_exit", exit_)
    monkeypatch.delenv(FAULT_ENV, raising=False)
    inject_fault()
    marker = tmp_path / "died-once"
    monkeypatch.setenv(FAULT_ENV, str(marker))
    with pytest.raises(SystemExit):
        inject_fault()
    assert exits == [1] and marker.exists()
    inject_fault()
    assert exits == [1]


class StopsAfter(InProcessExecutor):
    """An in-process executor interrupted after ``n`` units, leaving half a line in the store."""

    def __init__(self, n: int, store: Path) -> None:
        super().__init__(progress=False)
        self.n, self.store = n, store

    def run(self, units):
        for k, result in enumerate(super().run(units)):
            if k == self.n:
                with self.store.open("a") as f:
                    f.write('{"format": "imc-sim-sweep", "unit": "torn')
                raise KeyboardInterrupt
            yield result


def test_interrupted_sweep_resumes_with_nothing_lost_or_repeated(tiny_checkpoint, tiny_glue, noisy_device,
                                                                 tmp_path):
    plan_path = write_plan(tmp_path, [tiny_checkpoint], tiny_glue, devices=[str(noisy_device)], seeds=3)
    plan, store = load_plan(plan_path), store_of(plan_path)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(plan, store, StopsAfter(2, store))
    assert len(metrics(store)) == 2 * 2  # two whole units; the torn line is not read
    assert run_sweep(plan, store, InProcessExecutor(progress=False)).ran == 1
    resumed = metrics(store)
    clean = tmp_path / "clean.jsonl"
    run_sweep(plan, clean, InProcessExecutor(progress=False))
    assert resumed == metrics(clean) and len(resumed) == 3 * 2


def checked_refusal(argv: list[str], store: Path, message: str, capsys) -> None:
    before = store.read_bytes() if store.exists() else None
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert (store.read_bytes() if store.exists() else None) == before


@pytest.mark.parametrize("change, message", [
    (lambda c, p: {"devices": ["memristor"]}, "unknown device 'memristor'"),
    (lambda c, p: {"checkpoints": [str(p / "gone.pt")]}, "gone.pt not found"),
    (lambda c, p: {"checkpoints": [str(c), str(c)]}, "duplicate plan entry: checkpoints"),
    (lambda c, p: {"devices": ["pcm", str(shipped_profiles()["pcm"])]}, "duplicate plan entry: device"),
    (lambda c, p: {"seeds": [0, 3, 0]}, "duplicate plan entry: seed 0"),
    (lambda c, p: {"eval_limit": 0}, "eval_limit = 0"),
    (lambda c, p: {"chips": 3}, "chips is not a plan field"),
])
def test_bad_plan_one_line_store_untouched(change, message, tiny_checkpoint, tiny_glue, tmp_path, capsys):
    plan = write_plan(tmp_path, [tiny_checkpoint], tiny_glue, seeds=1)
    assert sweep(plan) == 0
    write_plan(tmp_path, [tiny_checkpoint], tiny_glue, **change(tiny_checkpoint, tmp_path))
    checked_refusal(["sweep", str(plan), "--quiet"], store_of(plan), message, capsys)


@pytest.mark.parametrize("rewrite, message", [
    (lambda t: t.replace(f'"imc_sim_version": "{__version__}"', '"imc_sim_version": "0.0.9"'),
     "written by imc-sim 0.0.9"),
    (lambda t: "my notes, no newline", "line 1 is not an imc-sim sweep result"),
    (lambda t: t + "my notes\n", "line 3 is not an imc-sim sweep result"),
])
def test_foreign_or_old_store_is_refused_untouched(rewrite, message, tiny_checkpoint, tiny_glue, tmp_path,
                                                   capsys):
    plan = write_plan(tmp_path, [tiny_checkpoint], tiny_glue, seeds=1)
    assert sweep(plan) == 0
    store = store_of(plan)
    store.write_text(rewrite(store.read_text()))
    checked_refusal(["sweep", str(plan), "--quiet"], store, message, capsys)


# --- Ray: one local Ray (2 CPUs) for the module --------------------------------------------------

def import_ray_or_skip():
    try:
        import ray
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but ray is not installed")
        pytest.skip("ray not installed")
    return ray


@pytest.fixture(scope="module")
def fault_marker(tmp_path_factory) -> Path:
    """Once this file exists, a worker has been killed in the middle of a unit."""
    return tmp_path_factory.mktemp("fault") / "killed-once"


@pytest.fixture(scope="module")
def local_ray(fault_marker):
    """A local Ray whose workers kill themselves in their first unit, once (see ``inject_fault``)."""
    ray = import_ray_or_skip()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {FAULT_ENV: str(fault_marker)}})
    yield ray
    ray.shutdown()


def test_ray_equals_in_process_and_retries_a_killed_worker(local_ray, fault_marker, tiny_checkpoint,
                                                           tiny_glue, noisy_device, tmp_path, capsys):
    plan = write_plan(tmp_path, [tiny_checkpoint], tiny_glue, seeds=2, devices=["pcm", str(noisy_device)])
    assert not fault_marker.exists()
    assert sweep(plan, "--ray", "--max-retries", "2", "--store", str(tmp_path / "ray.jsonl")) == 0
    assert fault_marker.exists()  # one worker died in its unit; Ray ran that unit again
    assert "4 units: 0 already in" in capsys.readouterr().out
    run_sweep(load_plan(plan), tmp_path / "here.jsonl", InProcessExecutor(progress=False))
    assert metrics(tmp_path / "ray.jsonl") == metrics(tmp_path / "here.jsonl")
    assert len(metrics(tmp_path / "ray.jsonl")) == 4 * 2
    assert local_ray.is_initialized()  # the executor leaves a Ray it did not start running


def test_unreachable_ray_address_one_line_store_untouched(tiny_checkpoint, tiny_glue, tmp_path, capsys):
    import_ray_or_skip()
    plan = write_plan(tmp_path, [tiny_checkpoint], tiny_glue, seeds=1)
    assert sweep(plan) == 0
    write_plan(tmp_path, [tiny_checkpoint], tiny_glue, seeds=2)
    port = closed_port()
    checked_refusal(["sweep", str(plan), "--quiet", "--ray-address", f"127.0.0.1:{port}"], store_of(plan),
                    f"cannot reach Ray at 127.0.0.1:{port}", capsys)
