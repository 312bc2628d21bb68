"""imc-sim as a Python library: a chip on a deployment (``Chip``), its drift times, copies of a
deployed model, models that are not float32, the sweep calls' arguments checked before any work,
and a library that prints nothing and leaves transformers' logging as it found it (the findings
of session 30's audit of the Python API)."""

from __future__ import annotations

import copy
import io
import logging
import re

import numpy as np
import pytest
import torch
from conftest import make_tiny_bert

from imc_sim.cli import main
from imc_sim.crossbar.mapping import deploy_model
from imc_sim.deploy import run
from imc_sim.deploy.chip import Chip
from imc_sim.deploy.compare import compare_checkpoints
from imc_sim.deploy.run import deploy_checkpoint
from imc_sim.deploy.sweep import MAX_SEEDS, sweep_arguments
from imc_sim.devices.profile import load_profile
from imc_sim.errors import ImcSimError
from imc_sim.units import seconds

DAY = 86400.0


def batch(n: int = 4, length: int = 9) -> dict[str, torch.Tensor]:
    ids = torch.randint(1, 100, (n, length), generator=torch.Generator().manual_seed(1))
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def first_read(deployment, inputs: dict) -> torch.Tensor:
    """The model's outputs as the first forward after the current drift would give them."""
    deployment.restart_reads()
    with torch.no_grad():
        return deployment.model(**inputs).logits.clone()


@pytest.mark.parametrize("device", ["pcm", "pcm-chip"])
def test_going_back_to_a_chip_after_another_gives_that_chip(device):
    """A deployment holds one chip: a Chip used again after another chip was programmed on the same
    deployment is programmed again, so it computes its own numbers, not a mix of both chips'."""
    model = make_tiny_bert()
    deployment = deploy_model(model, load_profile(device))
    deployment.calibrate([batch()])
    inputs = batch()
    Chip(deployment, 0).drift_to(DAY)
    chip_0 = first_read(deployment, inputs)
    Chip(deployment, 1).drift_to(DAY)
    chip_1 = first_read(deployment, inputs)
    first, second = Chip(deployment, 0), Chip(deployment, 1)
    first.drift_to(DAY)
    second.drift_to(DAY)
    assert not first.programmed and second.programmed
    first.drift_to(DAY)
    assert torch.equal(first_read(deployment, inputs), chip_0) and not torch.equal(chip_0, chip_1)
    assert deployment.programmed_seed == 0


def test_a_time_is_the_same_time_whatever_its_type():
    """Seconds as int, float, numpy integer (what iterating an array gives) or 0-d tensor, or the
    text '1h': the same chip state and the same per-read noise."""
    model = make_tiny_bert()
    deployment = deploy_model(model, load_profile("pcm"))
    inputs = batch()
    outputs = []
    for t in (3600, 3600.0, np.int64(3600), np.float32(3600), torch.tensor(3600.0), "1h"):
        Chip(deployment, 0).drift_to(t)
        with torch.no_grad():
            outputs.append(model(**inputs).logits.clone())
    assert all(torch.equal(o, outputs[0]) for o in outputs[1:])


@pytest.mark.parametrize("time, message", [
    (-5, "drift time -5 s is negative"), (float("nan"), "drift time nan s is not finite"),
    (float("inf"), "drift time inf s is not finite"), (1e30, "is beyond 1000000y"),
    ("1 day", "unknown time unit 'day'"), (True, "drift time True is neither seconds nor a time"),
    ([3600], "drift time [3600] is neither seconds nor a time"),
])
def test_a_drift_time_that_is_not_one_is_refused(time, message):
    deployment = deploy_model(make_tiny_bert(), load_profile("pcm"))
    with pytest.raises(ImcSimError, match=re.escape(message)):
        Chip(deployment, 0).drift_to(time)
    assert deployment.programmed_seed is None  # refused before programming


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True, None])
def test_a_chip_seed_is_a_non_negative_integer(seed):
    deployment = deploy_model(make_tiny_bert(), load_profile("pcm"))
    with pytest.raises(ImcSimError, match="a chip's seed is an integer >= 0"):
        Chip(deployment, seed)
    assert Chip(deployment, np.int64(3)).seed == 3 and Chip(deployment, 2**70).seed == 2**70


def test_seconds_reads_text_and_numbers_alike():
    assert seconds("1d") == seconds(DAY) == seconds(np.int64(86400)) == seconds(torch.tensor(DAY)) == DAY
    assert isinstance(seconds(np.int64(5)), float)
    assert (seconds(0), seconds(0.5), seconds("0s")) == (0.0, 0.5, 0.0)  # the end of programming, and after


def test_a_deployed_model_that_has_run_can_be_copied_and_saved(tmp_path):
    """The packed product of the int8 path (opaque oneDNN tensors) is left out of copies and
    pickles and rebuilt when used: the copy computes what the original does."""
    model = make_tiny_bert()
    deployment = deploy_model(model, load_profile("pcm"))
    Chip(deployment, 0).drift_to(3600)
    inputs = batch()
    with torch.no_grad():
        model(**inputs)
    twin = copy.deepcopy(model)
    with torch.no_grad():
        assert torch.equal(twin(**inputs).logits, model(**inputs).logits)  # the same next read
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    with torch.no_grad():
        assert torch.equal(loaded(**inputs).logits, model(**inputs).logits)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
@pytest.mark.parametrize("device", ["pcm", "pcm-chip"])
def test_a_model_that_is_not_float32_runs_on_tiles_in_its_dtype(dtype, device):
    """The tiles compute in float32 and hand the model back its own dtype (a bf16 BERT's LayerNorm
    used to fail on float32 outputs; static-range calibration on float64 inputs did too), whether
    the model was cast before or after deploying; the analog outputs stay close to float32's."""
    inputs = batch()
    reference = deploy_model(make_tiny_bert(), load_profile(device))
    reference.calibrate([inputs])
    Chip(reference, 0).drift_to(DAY)
    expected = first_read(reference, inputs)
    for cast_first in (True, False):
        model = make_tiny_bert().to(dtype) if cast_first else make_tiny_bert()
        deployment = deploy_model(model, load_profile(device))
        model.to(dtype)
        assert all(b.dtype in (torch.float32, torch.bool, torch.int8, torch.uint8)
                   for b in deployment.layers["bert.encoder.layer.0.attention.self.query"].buffers())
        deployment.calibrate([inputs])
        Chip(deployment, 0).drift_to(DAY)
        logits = first_read(deployment, inputs)
        assert logits.dtype == dtype
        assert torch.allclose(logits.float(), expected, atol=0.02, rtol=0)


def test_the_sweep_arguments_are_checked_before_any_work(tiny_checkpoint, monkeypatch):
    monkeypatch.setattr(run, "load_scored", lambda *a, **k: pytest.fail("loaded before the arguments' check"))
    for times, seeds, message in [
        ([3600.0], 0, f"seeds is a count of chips from 1 to {MAX_SEEDS}, not 0"),
        ([3600.0], -1, "seeds is a count of chips"), ([3600.0], 2.0, "seeds is a count of chips"),
        ([], 1, "^no drift time given$"), (["1h", 3600], 1, "drift time 1h is given twice"),
        ([-10.0], 1, "drift time -10 s is negative"), ([float("nan")], 1, "drift time nan s is not finite"),
        (3600.0, 1, "times is a list of drift times, not 3600.0"),
        ("1h", 1, "times is a list of drift times"),
    ]:
        with pytest.raises(ImcSimError, match=message):
            deploy_checkpoint(tiny_checkpoint, load_profile("pcm"), times, seeds, progress=False)
    with pytest.raises(ImcSimError, match="seeds is a count of chips"):
        compare_checkpoints([tiny_checkpoint], "pcm", ["1h"], 0, progress=False)
    with pytest.raises(ImcSimError, match="unknown device 'nosuch'"):
        deploy_checkpoint(tiny_checkpoint, "nosuch", ["1h"], 1, progress=False)
    with pytest.raises(ImcSimError, match="example limit must be at least 1, got 0"):
        deploy_checkpoint(tiny_checkpoint, "pcm", ["1h"], 1, eval_limit=0, progress=False)
    with pytest.raises(ImcSimError, match="--torch-device must be auto, cpu, cuda or cuda:N; got 'gpu'"):
        deploy_checkpoint(tiny_checkpoint, "pcm", ["1h"], 1, progress=False, torch_device="gpu")
    with pytest.raises(ImcSimError, match="--input-ranges must be one of auto, checkpoint, train, dev"):
        deploy_checkpoint(tiny_checkpoint, "pcm-chip", ["1h"], 1, progress=False, input_ranges="bogus")


def test_sweep_arguments_take_a_profile_name_and_text_times():
    profile, times, seeds = sweep_arguments("pcm", ["1h", np.int64(60), "1d"], np.int64(2))
    assert (profile, times, seeds) == (load_profile("pcm"), [3600.0, 60.0, DAY], 2)
    assert sweep_arguments("pcm", np.array([60, 3600]), 1)[1] == [60.0, 3600.0]  # an array of seconds
    assert sweep_arguments("pcm", ["1h"], MAX_SEEDS)[2] == MAX_SEEDS
    assert all(type(t) is float for t in times) and type(seeds) is int
    with pytest.raises(ImcSimError, match="only characterised at"):
        sweep_arguments("reram", ["1y"], 1)


def test_a_library_deploy_prints_nothing_and_reports_its_mapping(tiny_checkpoint, tiny_glue, capsys, caplog):
    """The mapping line is an INFO record of the ``imc_sim`` logger, which a command prints while it
    runs; a library call, even after a command ran in this process, writes nothing."""
    assert main(["devices"]) == 0
    capsys.readouterr()
    caplog.set_level(logging.INFO, logger="imc_sim")
    result = deploy_checkpoint(tiny_checkpoint, "ideal", ["1d"], 1, str(tiny_glue), 4, progress=False)
    assert capsys.readouterr() == ("", "")
    assert caplog.messages == ["mapped 12 layers onto 12 tiles of 512x512 (ideal): 16,384 weights on NVM, "
                               "980,706 parameters digital"]
    assert result.curve.points[0].label == "1d"


def test_loading_a_model_leaves_transformers_logging_as_it_was(tiny_checkpoint):
    """Transformers' warnings and progress bars are quiet while a model loads, then as the caller
    had them (they used to stay off for the rest of the session)."""
    from transformers.utils import logging as hf_logging

    from imc_sim.checkpoint import load_model

    before, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_info()
    hf_logging.enable_progress_bar()
    try:
        load_model(tiny_checkpoint)
        assert hf_logging.get_verbosity() == hf_logging.INFO and hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        load_model(tiny_checkpoint)
        assert not hf_logging.is_progress_bar_enabled()
    finally:
        hf_logging.set_verbosity(before)
        (hf_logging.enable_progress_bar if bars else hf_logging.disable_progress_bar)()


def test_a_profile_changed_from_python_is_validated_and_says_so():
    """``load_profile(name, changes)``: the shipped profile with fields merged section by section,
    validated as a file is, its path naming the changes (results record it); the shipped one is
    untouched."""
    changed = load_profile("pcm", {"programming": {"scale": 2.0}, "name": "pcm-2x"})
    shipped = load_profile("pcm")
    assert changed.programming == {**shipped.programming, "scale": 2.0} and changed.name == "pcm-2x"
    assert changed.drift == shipped.drift and shipped.programming["scale"] == 1.0
    assert changed.path == f"{shipped.path} with {{'programming': {{'scale': 2.0}}, 'name': 'pcm-2x'}}"
    with pytest.raises(ImcSimError, match=r"with \{'programming': \{'scale': -1\}\}: field "
                                          r"programming.scale = -1 is out of range"):
        load_profile("pcm", {"programming": {"scale": -1}})
    with pytest.raises(ImcSimError, match="changes are a mapping of fields"):
        load_profile("pcm", [("programming", {})])  # type: ignore[arg-type]


@pytest.mark.parametrize("drift, message", [
    (3600, "--drift is text, a time or a range such as '1d' or '1h..1y', not 3600"),
    ("1 day", "unknown time unit 'day'"), ("1y..1h", "drift range '1y..1h' starts after it ends"),
])
def test_train_args_refuse_a_drift_that_is_not_one(drift, message):
    """Checked with the other arguments, before any data or model loads (``TrainArgs(drift=3600)``
    used to fail inside training with a TypeError)."""
    from imc_sim.training.loop import TrainArgs

    with pytest.raises(ImcSimError, match=re.escape(message)):
        TrainArgs(device="pcm", drift=drift).validate()
    TrainArgs(device="pcm", drift="1h..1y").validate()


def test_one_path_where_a_list_of_checkpoints_is_expected_is_refused(tiny_checkpoint):
    """It used to be read character by character ("no checkpoint file /")."""
    from imc_sim.deploy.multitask import multitask_sweep

    for call in (compare_checkpoints, multitask_sweep):
        for one in (str(tiny_checkpoint), tiny_checkpoint):
            with pytest.raises(ImcSimError, match=re.escape(f"give a list of checkpoint files, not one path "
                                                            f"('{tiny_checkpoint}')")):
                call(one, "pcm", ["1d"], 1, progress=False)


def test_save_result_writes_only_what_load_result_reads(tmp_path):
    """A sensitivity result went through save_result and then load_result refused the file."""
    from imc_sim.deploy.results import save_result
    from imc_sim.deploy.sensitivity import SensitivityResult

    result = SensitivityResult.__new__(SensitivityResult)  # any instance: refused by its type
    with pytest.raises(ImcSimError, match="save_result writes deploy, compare and multitask results, not a "
                                          "SensitivityResult"):
        save_result(tmp_path / "s.json", result)
    assert not (tmp_path / "s.json").exists()


def test_a_profile_change_may_use_numpy_numbers_and_tuples():
    """What Python code has at hand (numpy scalars, tuples) validates as YAML's ints, floats and
    lists do; a bool is still not a number."""
    changed = load_profile("pcm", {"periphery": {"tile_rows": np.int64(256)},
                                   "programming": {"coeffs": (0.26, 1.9, -1.1), "scale": np.float32(2)}})
    assert changed.periphery.tile_rows == 256 and type(changed.periphery.tile_rows) is int
    assert changed.programming["coeffs"] == [0.26, 1.9, -1.1] and changed.programming["scale"] == 2.0
    with pytest.raises(ImcSimError, match="field programming.scale = True is not a number"):
        load_profile("pcm", {"programming": {"scale": True}})
