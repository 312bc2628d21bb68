"""Several tasks on one chip (`deploy/multitask.py`): each task's static input ranges calibrated
with its own adapter, its own dev set to the limit, the devices' times checked, the first
checkpoint named when another's base differs, and the printed table whole."""

from types import SimpleNamespace

import pytest
import torch
from conftest import forged, make_tiny_bert, train_tiny
from test_static_ranges import chip_profile

from imc_sim.calibration import CALIBRATION_BATCHES
from imc_sim.checkpoint import read_checkpoint
from imc_sim.crossbar.mapping import deploy_model
from imc_sim.data import DataSource
from imc_sim.deploy import multitask
from imc_sim.deploy.periphery import base_digest, load_periphery
from imc_sim.deploy.results import CheckpointCurve, MultiTaskResult, TaskCurve, TimePoint
from imc_sim.deploy.run import dev_set
from imc_sim.devices.profile import load_profile
from imc_sim.errors import ImcSimError


@pytest.fixture(scope="module")
def other_task(tmp_path_factory, tiny_model_dir, tiny_glue):
    """A second GRASP adapter on the same tiny base, trained hard enough to move its ranges."""
    return train_tiny(tmp_path_factory.mktemp("other") / "grasp-b.pt", tiny_model_dir, tiny_glue,
                      "--k", "8", "--seed", "1", "--lr", "0.5")


def test_a_time_the_device_cannot_produce_is_refused_first(tmp_path):
    with pytest.raises(ImcSimError) as info:
        multitask.multitask_sweep([tmp_path / "absent.pt"], load_profile("reram"), [3600.0], 1)
    assert str(info.value) == "device 'reram' (reram-wan2022) is only characterised at 1s, 1d, 2d; got 1h"


def test_at_least_one_checkpoint():
    with pytest.raises(ImcSimError) as info:
        multitask.multitask_sweep([], load_profile("pcm"), [3600.0], 1)
    assert str(info.value) == "multitask needs at least one checkpoint"


def test_the_first_checkpoint_is_named_beside_the_one_that_differs():
    other = make_tiny_bert()
    with torch.no_grad():
        other.bert.encoder.layer[0].output.dense.weight.add_(0.01)
    models = [SimpleNamespace(model=m) for m in (make_tiny_bert(), make_tiny_bert(), other)]
    with pytest.raises(ImcSimError) as info:
        multitask.check_same_base(["a.pt", "b.pt", "c.pt"], models)
    assert str(info.value) == ("c.pt and a.pt were fine-tuned from different base weights; one chip "
                               "holds one base model")


def test_one_checkpoint_is_its_own_shared_base():
    model = make_tiny_bert()
    assert multitask.check_same_base(["a.pt"], [SimpleNamespace(model=model)]) == base_digest(model)


def curve(name, digital, *metrics):
    points = tuple(TimePoint.of(t, m) for t, m in zip((3600.0, 86400.0), metrics, strict=True))
    return CheckpointCurve(name, f"{name}.pt", "grasp", None, digital, points)


def test_the_multitask_table_whole():
    result = MultiTaskResult("pcm", None, 2, "digest", None, (
        TaskCurve("sst2", "accuracy", 872, curve("sst2: a", 0.9, [0.8, 0.9], [0.7, 0.8])),
        TaskCurve("stsb", "pearson", 1500, curve("stsb: b", 0.85, [0.8, 0.8], [0.6, 0.7]))))
    assert multitask.format_multitask_table(result).splitlines() == [
        "task: checkpoint  metric    digital  1h             1d",
        "----------------  --------  -------  -------------  -------------",
        "sst2: a           accuracy  90.00    85.00 +- 7.07  75.00 +- 7.07",
        "stsb: b           pearson   85.00    80.00 +- 0.00  65.00 +- 7.07"]
    assert multitask.format_multitask_table(result, markdown=True).splitlines()[1].startswith("|--")


def test_a_table_of_one_task_in_its_own_metric():
    result = MultiTaskResult("pcm", None, 2, "digest", None, (
        TaskCurve("lm", "perplexity", 40, curve("lm: c", 31.5, [33.0, 35.0], [40.0, 44.0])),))
    assert multitask.format_multitask_table(result).splitlines()[2:] == [
        "lm: c             perplexity  31.50    34.00 +- 1.41  42.00 +- 2.83"]


def alone_ranges(path, profile, source, limit):
    """The static ranges `deploy --grasp-periphery` calibrates for the checkpoint alone."""
    loaded = load_periphery(path)
    deployment = deploy_model(loaded.model, profile)
    deployment.calibrate(dev_set(loaded, source, limit)[0][:CALIBRATION_BATCHES])
    return {name: layer.input_ranges for name, layer in deployment.layers.items()}


def test_each_task_calibrates_with_its_own_adapter_and_dev_limit(
        tiny_checkpoint, other_task, tiny_glue, tmp_path, monkeypatch):
    seen = {}
    calibrate = multitask.TaskView.calibrate

    def recording(view):
        calibrate(view)
        seen[view.path] = view.ranges
    monkeypatch.setattr(multitask.TaskView, "calibrate", recording)
    source, chip = DataSource(data_dir=str(tiny_glue)), chip_profile()
    args = read_checkpoint(other_task)["train_args"]
    labelled = forged(other_task, tmp_path / "grasp-b.pt",
                      train_args={**args, "device": "pcm", "drift": "1h"})
    result = multitask.multitask_sweep([tiny_checkpoint, labelled], chip, [3600.0], 1, source,
                                       eval_limit=3, progress=False)
    assert (result.device, result.device_file, result.seeds) == (chip.name, "chip.yaml", 1)
    assert result.base_digest == base_digest(load_periphery(tiny_checkpoint).model)
    assert [t.curve.device_trained for t in result.tasks] == [None, "pcm @ 1h"]
    assert [t.dev_examples for t in result.tasks] == [3, 3]
    for path, task in zip((tiny_checkpoint, labelled), result.tasks, strict=True):
        assert (task.curve.path, task.curve.method) == (str(path), "grasp")
        assert task.curve.mapping == result.mapping and result.mapping.analog_layers > 0
    mine, theirs = (alone_ranges(p, chip, source, 3) for p in (tiny_checkpoint, other_task))
    assert any(not torch.equal(mine[n], theirs[n]) for n in mine)  # the adapters do differ
    for path, alone in ((tiny_checkpoint, mine), (labelled, theirs)):
        ranges = seen[str(path)]
        assert ranges.keys() == alone.keys()
        assert all(torch.equal(ranges[n], alone[n]) for n in alone)
