"""The sweep's results store line by line: what a unit's lines hold, the one-line refusals of a
bad, foreign or newer store, the writer's file, lock, torn-tail cut and short write, and the
summary read back from the store (every unit complete, each curve from its own units)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from imc_sim import __version__
from imc_sim.data import DataSource
from imc_sim.deploy.plan import CheckpointRef, DeviceRef, SweepPlan
from imc_sim.deploy.plan_data import DataRef
from imc_sim.deploy.results import CheckpointCurve, CompareResult, TimePoint
from imc_sim.deploy.store import StoreWriter, read_store, result_lines, summarize_store
from imc_sim.deploy.unit import ChipRun, UnitResult
from imc_sim.devices.profile import load_profile
from imc_sim.errors import ImcSimError
from imc_sim.jobs import Resources
from imc_sim.tasks import get_task

YEAR = 31536000.0
SST2 = get_task("sst2")


def unit_result(times=(1.0, YEAR), metrics=(0.5, 0.25), device_trained="pcm @ 1d") -> UnitResult:
    entry = {"checkpoint": "runs/aware.pt", "device": "pcm", "seed": 3}
    return UnitResult("k" * 20, entry, "aware", "grasp", device_trained, "sst2", times,
                      ChipRun("accuracy", 0.875, metrics), 12.5)


def test_a_units_lines_hold_every_field_at_each_time(tmp_path):
    result = unit_result()
    data = result_lines(result)
    assert data.endswith(b"\n")
    common = {"format": "imc-sim-sweep", "format_version": 1, "imc_sim_version": __version__,
              "unit": "k" * 20, "entry": result.entry, "checkpoint_name": "aware", "method": "grasp",
              "device_trained": "pcm @ 1d", "task": "sst2", "metric_name": "accuracy",
              "digital_metric": 0.875, "unit_seconds": 12.5}
    assert [json.loads(line) for line in data.decode().splitlines()] == [
        {**common, "t_seconds": 1.0, "label": "1s", "metric": 0.5},
        {**common, "t_seconds": YEAR, "label": "1y", "metric": 0.25}]
    with StoreWriter(tmp_path / "s.jsonl") as writer:
        writer.append(result)
    assert (tmp_path / "s.jsonl").read_bytes() == data
    assert [(r.t_seconds, r.label, r.metric, r.device_trained) for r in read_store(tmp_path / "s.jsonl")] == [
        (1.0, "1s", 0.5, "pcm @ 1d"), (YEAR, "1y", 0.25, "pcm @ 1d")]


def test_a_unit_missing_a_times_metric_is_not_written(tmp_path):
    store = tmp_path / "s.jsonl"
    with StoreWriter(store) as writer, pytest.raises(ValueError):
        writer.append(unit_result(metrics=(0.5,)))
    assert store.read_bytes() == b""


def good_line(**changes) -> str:
    raw = json.loads(result_lines(unit_result()).decode().splitlines()[0])
    return json.dumps({k: v for k, v in {**raw, **changes}.items() if v is not None}) + "\n"


FOREIGN = "results store STORE: line 2 is not an imc-sim sweep result"


@pytest.mark.parametrize("content, message", [
    (lambda: good_line() + good_line(format_version=2),
     f"results store STORE was written by imc-sim {__version__} (store format 2), "
     f"incompatible with imc-sim {__version__} (format 1); use another --store"),
    (lambda: good_line() + good_line(metric=None), "results store STORE: line 2 lacks metric"),
    (lambda: good_line() + good_line(metric="abc"),
     "results store STORE: line 2's metric = 'abc' is not a finite number"),
    (lambda: good_line() + good_line(digital_metric=[1]),
     "results store STORE: line 2's digital_metric = [1] is not a finite number"),
    (lambda: good_line(t_seconds=10**400), "results store STORE: line 1's t_seconds = "
     f"{str(10**400)[:40]} is not a finite number"),
    (lambda: good_line().replace('"metric": 0.5', '"metric": NaN'),
     "results store STORE: line 1's metric = nan is not a finite number"),
    (lambda: good_line(unit_seconds=True),
     "results store STORE: line 1's unit_seconds = True is not a finite number"),
    (lambda: good_line(label=3), "results store STORE: line 1's label = 3 is not text"),
    (lambda: good_line(entry=[]), "results store STORE: line 1's entry = [] is not a mapping"),
    (lambda: good_line(device_trained=1),
     "results store STORE: line 1's device_trained = 1 is not text or null"),
    (lambda: good_line() + "[" * 100_000 + "\n", FOREIGN),
    (lambda: good_line().encode() + "café\n".encode("latin-1"), FOREIGN),  # not even UTF-8
    (lambda: good_line() + '{"notes": 1}', FOREIGN),  # a last line without its newline, yet no torn unit
    (lambda: good_line() + '{"format": "imc-sim-sweeps", "unit": "x"}', FOREIGN),
])
def test_a_bad_foreign_or_newer_store_is_refused_in_one_line(content, message, tmp_path):
    store = tmp_path / "s.jsonl"
    raw = content()
    store.write_bytes(raw if isinstance(raw, bytes) else raw.encode())
    with pytest.raises(ImcSimError) as info:
        read_store(store)
    assert str(info.value) == message.replace("STORE", str(store))


def test_the_writer_makes_its_folders_and_a_plain_file(tmp_path):
    store = tmp_path / "a" / "b" / "s.jsonl"
    old = os.umask(0o022)
    try:
        with StoreWriter(store):
            pass
    finally:
        os.umask(old)
    assert store.read_bytes() == b"" and store.stat().st_mode & 0o777 == 0o644


def test_a_second_writer_is_refused_until_the_first_closes(tmp_path):
    store = tmp_path / "s.jsonl"
    with StoreWriter(store):
        with pytest.raises(ImcSimError) as info:
            StoreWriter(store)
        assert str(info.value) == f"results store {store} is in use by another sweep"
    with StoreWriter(store) as writer:
        writer.append(unit_result())
    assert len(read_store(store)) == 2


def test_the_writer_cuts_a_one_byte_torn_first_line(tmp_path):
    store = tmp_path / "s.jsonl"
    store.write_bytes(b"{")
    with StoreWriter(store) as writer:
        assert store.read_bytes() == b""
        writer.append(unit_result())
    assert store.read_bytes() == result_lines(unit_result())


def test_a_short_write_is_an_error_naming_the_store(tmp_path, monkeypatch):
    store = tmp_path / "s.jsonl"
    size = len(result_lines(unit_result()))
    real_write = os.write
    with StoreWriter(store) as writer, monkeypatch.context() as m:
        m.setattr(os, "write", lambda fd, data: real_write(fd, data[:10]))
        with pytest.raises(OSError) as info:
            writer.append(unit_result())
    assert str(info.value) == f"short write to {store} (10 of {size} bytes)"


# --- the summary read back from the store ------------------------------------------------------

def plan_of(tmp_path: Path, times: tuple[float, ...]) -> SweepPlan:
    """Two checkpoints (one device-aware) x two devices x seeds 0 and 3, GLUE SST-2 from the hub."""
    ckpts = tuple(CheckpointRef(f"runs/{name}.pt", tmp_path / f"{name}.pt", name * 8, method, SST2, trained)
                  for name, method, trained in [("plain", "lora", None), ("aware", "grasp", "pcm @ 1d")])
    devices = tuple(DeviceRef(name, load_profile(name), name * 8) for name in ("pcm", "gaussian"))
    return SweepPlan(tmp_path / "plan.yaml", ckpts, devices, (0, 3), times,
                     DataRef(SST2, DataSource(), None, None), None, Resources())


def metric(unit, t) -> float:
    """A number unique to (device, checkpoint, seed, time)."""
    return (unit.device.spec == "pcm") * 0.5 + (unit.checkpoint.method == "grasp") * 0.25 \
        + unit.seed / 100 + (t > 1) / 1000


def store_of(plan, tmp_path, skip=lambda u, t: False) -> Path:
    store = tmp_path / "s.jsonl"
    with StoreWriter(store) as writer:
        for u in plan.units():
            ts = tuple(t for t in u.times if not skip(u, t))
            run = ChipRun("accuracy", 0.9 if u.checkpoint.method == "grasp" else 0.8,
                          tuple(metric(u, t) for t in ts))
            c = u.checkpoint
            writer.append(UnitResult(u.key, u.entry(), c.name, c.method, c.device_trained, c.task.name, ts,
                                     run, 1.0))
    return store


@pytest.mark.parametrize("times", [(1.0,), (1.0, YEAR)])
def test_summary_has_one_curve_per_checkpoint_from_its_own_units(times, tmp_path):
    plan = plan_of(tmp_path, times)
    results = summarize_store(plan, read_store(store_of(plan, tmp_path)))

    def curve(device, name, method, trained, digital):
        units = [u for u in plan.units() if u.device.spec == device and u.checkpoint.name == name]
        return CheckpointCurve(name, f"runs/{name}.pt", method, trained, digital,
                               tuple(TimePoint.of(t, [metric(u, t) for u in units]) for t in times))

    assert results == [CompareResult(device, 2, "sst2", "accuracy", (
        curve(device, "plain", "lora", None, 0.8), curve(device, "aware", "grasp", "pcm @ 1d", 0.9)))
        for device in ("pcm", "gaussian")]
    assert results[0].checkpoints[1].points[0].metrics == (0.75, 0.78)


def test_summary_of_an_incomplete_store_names_the_first_unit_missing(tmp_path):
    plan = plan_of(tmp_path, (1.0, YEAR))
    aware_on_gaussian = [u for u in plan.units()
                         if u.device.spec == "gaussian" and u.checkpoint.name == "aware"]
    # seed 0 lacks its 1y line, seed 3 lacks both
    store = store_of(plan, tmp_path, skip=lambda u, t: u in aware_on_gaussian and (u.seed == 3 or t > 1))
    with pytest.raises(ImcSimError) as info:
        summarize_store(plan, read_store(store))
    assert str(info.value) == (f"results store lacks unit {aware_on_gaussian[0].key} "
                               "(runs/aware.pt on gaussian, seed 0)")
