"""Loading a sweep plan (mutation testing found these unchecked, docs/mutation.md): what a unit's plan
entry and key record, paths relative to the plan's folder, times as one string, device and
checkpoint duplicates named as the user wrote them, a device-aware checkpoint's training shown,
eval_limit applied when the plan reads its dev set, and the exact one-line refusals of bad plans."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from conftest import ascii_locale, file_sha256, forged, write_plan_file

from imc_sim import __version__
from imc_sim.checkpoint import read_checkpoint
from imc_sim.deploy.plan import load_plan
from imc_sim.devices.profile import shipped_profiles
from imc_sim.errors import ImcSimError
from imc_sim.jobs import Resources

KEYS = ("checkpoints, devices, seeds, times, data_dir, validation_file, file_format, header, text_column, "
        "label_column, eval_limit, resources")
YEAR = 365 * 86400.0


def write_plan(folder: Path, glue: Path, **fields) -> Path:
    """A plan in ``folder`` naming ``grasp.pt`` there (relative); ``fields`` replace its defaults."""
    return write_plan_file(folder, **{"checkpoints": ["grasp.pt"], "data_dir": str(glue), **fields})


def pcm_copy(path: Path, **programming) -> Path:
    """The shipped pcm profile (its name kept) at ``path``, with ``programming`` fields changed."""
    raw = yaml.safe_load(shipped_profiles()["pcm"].read_text(encoding="utf-8"))
    raw["programming"].update(programming)
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


@pytest.fixture
def folder(tmp_path, tiny_checkpoint) -> Path:
    """A plan folder holding the tiny checkpoint as ``grasp.pt``; the tests run from elsewhere."""
    shutil.copy(tiny_checkpoint, tmp_path / "grasp.pt")
    return tmp_path


def test_entry_records_what_the_numbers_depend_on_and_paths_are_the_plans(folder, tiny_glue):
    pcm_copy(folder / "my-pcm.yaml")
    plan = load_plan(write_plan(folder, tiny_glue, devices=["my-pcm.yaml", "gaussian"], seeds=[0, 3],
                                times="1s,1y", eval_limit=4, resources={"cpus": 2, "gpus": 0.5}))
    units = plan.units()
    assert [(u.device.spec, u.seed) for u in units] == [("my-pcm.yaml", 0), ("my-pcm.yaml", 3),
                                                        ("gaussian", 0), ("gaussian", 3)]
    assert plan.times == (1.0, YEAR) and plan.eval_limit == 4
    assert {u.resources for u in units} == {Resources(2, 0.5)}
    shipped_pcm = load_plan(write_plan(folder, tiny_glue)).devices[0]
    assert units[1].entry() == {
        "checkpoint": "grasp.pt", "device": "pcm", "device_spec": "my-pcm.yaml",
        "checkpoint_sha256": file_sha256(folder / "grasp.pt"),
        "device_sha256": shipped_pcm.sha256,  # the profile's content, wherever its file is
        "seed": 3, "times": [1.0, YEAR], "task": "sst2",
        "dev_sha256": file_sha256(tiny_glue / "SST-2" / "dev.tsv"), "eval_limit": 4,
        "imc_sim_version": __version__}
    assert plan.checkpoints[0].path == folder / "grasp.pt"


def test_unit_keys_follow_device_content_not_its_file(folder, tiny_glue):
    def key(**fields) -> str:
        [unit] = load_plan(write_plan(folder, tiny_glue, **fields)).units()
        return unit.key

    base = key()
    assert key(devices=[str(pcm_copy(folder / "elsewhere.yaml"))]) == base
    assert key(resources={"cpus": 4, "gpus": 1}) == base  # numbers do not depend on the worker
    edited = pcm_copy(folder / "edited.yaml")
    before = key(devices=["edited.yaml"])
    pcm_copy(edited, scale=2.0)  # the same file, edited in place
    assert key(devices=["edited.yaml"]) not in {before, base}


def test_device_aware_checkpoint_shows_its_training(folder, tiny_glue):
    train_args = {**read_checkpoint(folder / "grasp.pt")["train_args"], "device": "pcm", "drift": "1h"}
    forged(folder / "grasp.pt", folder / "aware.pt", train_args=train_args)
    plan = load_plan(write_plan(folder, tiny_glue, checkpoints=["grasp.pt", "aware.pt"]))
    assert [(c.spec, c.name, c.method, c.device_trained) for c in plan.checkpoints] == [
        ("grasp.pt", "grasp", "grasp", None), ("aware.pt", "aware", "grasp", "pcm @ 1h")]


def test_reram_plan_at_its_characterised_times(folder, tiny_glue):
    plan = load_plan(write_plan(folder, tiny_glue, devices=["reram"], times=["1s", "1d"]))
    assert plan.devices[0].profile.name == "reram" and plan.times == (1.0, 86400.0)
    path = write_plan(folder, tiny_glue, devices=["reram"], times=["1s", "1y"])
    with pytest.raises(ImcSimError) as exc:
        load_plan(path)
    assert str(exc.value) == (f"plan {path}: device 'reram' (reram-wan2022) is only characterised at "
                              "1s, 1d, 2d; got 1y")


def test_utf8_plan_is_read_whatever_the_locale(folder, tiny_glue):
    shutil.copy(folder / "grasp.pt", folder / "grâsp.pt")
    plan_path = write_plan(folder, tiny_glue, checkpoints=["grâsp.pt"])
    with ascii_locale():
        plan = load_plan(plan_path)
    assert plan.units()[0].entry()["checkpoint"] == "grâsp.pt"


def test_eval_limit_bounds_what_the_plan_reads(folder, tiny_glue):
    glue = folder / "glue"
    shutil.copytree(tiny_glue, glue)
    dev = glue / "SST-2" / "dev.tsv"
    dev.write_text(dev.read_text() + "a row without its label\n")  # the 9th example
    plan = load_plan(write_plan(folder, "glue", eval_limit=8))
    assert plan.data.dev_file == dev and plan.eval_limit == 8
    path = write_plan(folder, "glue")
    with pytest.raises(ImcSimError) as exc:
        load_plan(path)
    assert str(exc.value) == f"plan {path}: {dev}:10: expected more columns, got 1"


def fields(**changes):
    return lambda folder: changes


@pytest.mark.parametrize("text, message", [
    ("checkpoints: [grasp.pt\ndevices: [pcm]\n", "malformed YAML at line 2"),
    ("checkpoints: grasp.pt\ndevices: pcm\nseeds: 1\ntimes: \x07\n", "malformed YAML"),
    ("- grasp.pt\n- pcm\n", f"expected a mapping of {KEYS}"),
    ("checkpoints: grasp.pt\ntimes: 1s\n", "devices is missing"),
])
def test_unreadable_plan_one_whole_line(text, message, tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ImcSimError) as exc:
        load_plan(path)
    assert str(exc.value) == f"plan {path}: {message}"


def test_missing_plan_file_one_line(tmp_path):
    with pytest.raises(ImcSimError) as exc:
        load_plan(tmp_path / "plan.yaml")
    assert str(exc.value) == f"no plan file {tmp_path / 'plan.yaml'}"


@pytest.mark.parametrize("change, message", [
    (fields(chips=3), f"chips is not a plan field (known: {KEYS})"),
    (fields(seeds=0), "seeds = 0 must be a count from 1 to 100000 or a list of seeds"),
    (fields(eval_limit=0), "eval_limit = 0 must be a whole number >= 1"),
    (fields(resources={"cpus": 0}), "resources.cpus = 0 must be a whole number >= 1"),
    (fields(devices=[]), "devices must be a non-empty list of names or paths, got []"),
    (fields(checkpoints=[]), "checkpoints must be a non-empty list of names or paths, got []"),
    (fields(checkpoints=["gone.pt"]), "checkpoint gone.pt not found ({folder}/gone.pt)"),
    (lambda f: {"checkpoints": ["grasp.pt", shutil.copy(f / "grasp.pt", f / "copy.pt").name]},
     "duplicate plan entry: checkpoints grasp.pt and copy.pt have the same content"),
    (lambda f: {"devices": [pcm_copy(f / "my-pcm.yaml").name, "pcm"]},
     "duplicate plan entry: device pcm repeats my-pcm.yaml"),
    (lambda f: {"devices": ["pcm", pcm_copy(f / "edited.yaml", scale=2.0).name]},
     "duplicate plan entry: device edited.yaml repeats pcm"),
    (fields(devices=["memristor"]), "unknown device 'memristor': not a shipped profile (fefet, gaussian, "
                                    "ideal, pcm-chip, pcm, reram) and not a YAML file"),
    (fields(times=["1 fortnight"]), "cannot read drift time 'fortnight'; write e.g. 1s, 90s, 1h, 1d, 1w, "
                                    "1mo, 1y, 3600"),
], ids=["unknown", "seeds", "eval_limit", "resources", "devices", "checkpoints", "not found",
        "same checkpoint", "same device", "same device name", "unknown device", "bad time"])
def test_bad_plan_one_whole_line(change, message, folder, tiny_glue):
    path = write_plan(folder, tiny_glue, **change(folder))
    with pytest.raises(ImcSimError) as exc:
        load_plan(path)
    assert str(exc.value) == f"plan {path}: {message.format(folder=folder)}"
