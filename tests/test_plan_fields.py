"""A sweep plan's seeds, eval_limit, resources, devices and checkpoints fields that mutation testing
found unchecked (docs/mutation.md): the values a plan and its units get, the defaults of resources,
one name written as a plain string, and the exact one-line refusals of bad values."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import write_plan_file

from imc_sim.deploy.plan import load_plan
from imc_sim.errors import ImcSimError
from imc_sim.jobs import Resources


def write_plan(folder: Path, **fields) -> Path:
    return write_plan_file(folder, **{"checkpoints": ["gone.pt"], **fields})


LIST = "must be a non-empty list of names or paths, got"
SEEDS = "seeds must be a count or a non-empty list of seeds >= 0, got"


@pytest.mark.parametrize("fields, message", [
    ({"seeds": 0}, "seeds = 0 must be a count from 1 to 100000 or a list of seeds"),
    ({"seeds": 100_001}, "seeds = 100001 must be a count from 1 to 100000 or a list of seeds"),
    ({"seeds": []}, f"{SEEDS} []"),
    ({"seeds": [3, -1]}, f"{SEEDS} [3, -1]"),
    ({"seeds": [0, 1.5]}, f"{SEEDS} [0, 1.5]"),
    ({"seeds": True}, f"{SEEDS} True"),
    ({"seeds": [4, 3, 4, 3]}, "duplicate plan entry: seed 3 is listed twice"),
    ({"seeds": [1, 2], "eval_limit": 0}, "eval_limit = 0 must be a whole number >= 1"),
    ({"eval_limit": True}, "eval_limit = True must be a whole number >= 1"),
    ({"eval_limit": "5"}, "eval_limit = '5' must be a whole number >= 1"),
    ({"resources": 2}, "resources must be a mapping with cpus and/or gpus, got 2"),
    ({"resources": {"cpus": 1, "memory": 3}},
     "resources must be a mapping with cpus and/or gpus, got {'cpus': 1, 'memory': 3}"),
    ({"resources": {"cpus": 0}}, "resources.cpus = 0 must be a whole number >= 1"),
    ({"resources": {"cpus": True}}, "resources.cpus = True must be a whole number >= 1"),
    ({"resources": {"cpus": 2.0}}, "resources.cpus = 2.0 must be a whole number >= 1"),
    ({"resources": {"gpus": -1}}, "resources.gpus = -1 must be a number >= 0"),
    ({"resources": {"gpus": True}}, "resources.gpus = True must be a number >= 0"),
    ({"resources": {"gpus": "1"}}, "resources.gpus = '1' must be a number >= 0"),
    ({"resources": {"gpus": float("nan")}}, "resources.gpus = nan must be a number >= 0"),
    ({"resources": {"gpus": float("inf")}}, "resources.gpus = inf must be a number >= 0"),
    ({"seeds": 10**30}, f"seeds = {10**30} must be a count from 1 to 100000 or a list of seeds"),
    ({"devices": []}, f"devices {LIST} []"),
    ({"devices": 3}, f"devices {LIST} 3"),
    ({"devices": {"pcm": 1}}, f"devices {LIST} {{'pcm': 1}}"),
    ({"devices": ["pcm", 3]}, f"devices {LIST} ['pcm', 3]"),
    ({"devices": ["pcm", ""]}, f"devices {LIST} ['pcm', '']"),
    ({"devices": "pcm", "checkpoints": []}, f"checkpoints {LIST} []"),
])
def test_bad_field_is_one_line_naming_the_plan(fields, message, tmp_path):
    # these fields are checked before any checkpoint is read: "gone.pt" is never looked for
    path = write_plan(tmp_path, **fields)
    with pytest.raises(ImcSimError) as exc:
        load_plan(path)
    assert str(exc.value) == f"plan {path}: {message}"


@pytest.mark.parametrize("fields, seeds, eval_limit, resources", [
    ({"seeds": [2, 0], "eval_limit": 1, "resources": {"cpus": 3, "gpus": 0.5}}, (2, 0), 1, Resources(3, 0.5)),
    ({"seeds": 2, "eval_limit": 7, "resources": {"gpus": 2}}, (0, 1), 7, Resources(1, 2.0)),
    ({"seeds": [5], "resources": {"cpus": 1}}, (5,), None, Resources(1, 0.0)),
    ({"resources": {}}, (0,), None, Resources(1, 0.0)),
])
def test_fields_reach_the_plan_and_every_unit(fields, seeds, eval_limit, resources, tiny_checkpoint,
                                              tiny_glue, tmp_path):
    # one name may be written as a plain string instead of a one-element list
    path = write_plan(tmp_path, checkpoints=str(tiny_checkpoint), devices="pcm", data_dir=str(tiny_glue),
                      **fields)
    plan = load_plan(path)
    assert (plan.seeds, plan.eval_limit, plan.resources) == (seeds, eval_limit, resources)
    assert [d.profile.name for d in plan.devices] == ["pcm"]
    assert [c.path for c in plan.checkpoints] == [tiny_checkpoint]
    units = plan.units()
    assert [u.seed for u in units] == list(seeds)
    assert {(u.eval_limit, u.resources) for u in units} == {(eval_limit, resources)}
