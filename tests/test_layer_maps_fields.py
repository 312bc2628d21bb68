"""The library calls behind ``imc-sim sensitivity`` and the placement experiment
(:mod:`imc_sim.deploy.layer_maps`): what their results record about the run (checkpoint, task,
device, head, examples, seeds, times), what they print, which options reach the loader, and the
one-line errors they raise before loading anything."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from conftest import forged
from test_static_ranges import chip_profile

from imc_sim.checkpoint import read_checkpoint
from imc_sim.data import DataSource
from imc_sim.deploy import layer_maps
from imc_sim.deploy.layer_maps import checkpoint_placement, checkpoint_sensitivity
from imc_sim.devices.profile import PROFILE_DIR, load_profile
from imc_sim.errors import ImcSimError

DAY, YEAR = 86400.0, 365 * 86400.0
HEAD = ["bert.pooler.dense", "classifier"]
RERAM = "device 'reram' (reram-wan2022) is only characterised at 1s, 1d, 2d; got 1y"


def source(glue: Path) -> DataSource:
    return DataSource(data_dir=str(glue))


def test_sensitivity_result_records_the_run(tiny_checkpoint, tiny_glue, capsys, caplog):
    """Two seeds on pcm over the first 3 dev examples, head digital, no progress bar; the mapping is
    reported through the ``imc_sim`` logger, not printed: a library call writes nothing."""
    caplog.set_level(logging.INFO, logger="imc_sim")
    result = checkpoint_sensitivity(tiny_checkpoint, load_profile("pcm"), [DAY], 2, ["one-analog"],
                                    source(tiny_glue), eval_limit=3, analog_head=False, progress=False)
    assert (result.checkpoint, result.method, result.task, result.metric_name) == (
        str(tiny_checkpoint), "grasp", "sst2", "accuracy")
    assert (result.device, result.device_file) == ("pcm", str(Path(PROFILE_DIR, "pcm.yaml")))
    assert result.analog_head is False
    assert (result.dev_examples, result.seeds) == (3, 2)
    assert len(result.all_analog[0].metrics) == 2 and len(result.maps[0].layers) == 12
    assert caplog.messages == ["mapped 12 layers onto 12 tiles of 512x512 (pcm): 16,384 weights on NVM, "
                               "980,706 parameters digital"]
    assert capsys.readouterr() == ("", "")


def test_sensitivity_defaults_keep_the_head_digital_and_show_progress(tiny_checkpoint, tiny_glue, capsys):
    result = checkpoint_sensitivity(tiny_checkpoint, load_profile("ideal"), [DAY], 1, ["one-analog"],
                                    source(tiny_glue), eval_limit=2)
    assert result.analog_head is False
    assert [la.name for la in result.maps[0].layers][-1] == "bert.encoder.layer.1.output.dense"
    assert "sensitivity layers x seeds: 100%|██████████| 13/13 [" in capsys.readouterr().err


def test_sensitivity_with_the_head_on_tiles(tiny_checkpoint, tiny_glue):
    result = checkpoint_sensitivity(tiny_checkpoint, load_profile("ideal"), [DAY], 1, ["one-analog"],
                                    source(tiny_glue), eval_limit=2, analog_head=True, progress=False)
    assert result.analog_head is True
    names = [la.name for la in result.maps[0].layers]
    assert len(names) == 14 and names[-2:] == HEAD


def test_sensitivity_hands_its_torch_device_to_the_loader(tiny_checkpoint, tiny_glue, monkeypatch):
    """The model is loaded onto the ``torch_device`` asked for (here the CPU, named explicitly)."""
    asked = []
    real = layer_maps.load_scored

    def spy(path, data_source, eval_limit, torch_device=None):
        asked.append(torch_device)
        return real(path, data_source, eval_limit, torch_device)

    monkeypatch.setattr(layer_maps, "load_scored", spy)
    checkpoint_sensitivity(tiny_checkpoint, load_profile("ideal"), [DAY], 1, ["one-analog"],
                           source(tiny_glue), eval_limit=1, progress=False, torch_device=torch.device("cpu"))
    assert asked == [torch.device("cpu")]


def test_static_ranges_are_calibrated_on_the_dev_set_without_training_data(tiny_checkpoint, tiny_glue,
                                                                            tmp_path, caplog):
    """A checkpoint that records no training data that is here: the static ranges of the chip
    come from the dev set, and the reported mapping says so."""
    caplog.set_level(logging.INFO, logger="imc_sim")
    args = read_checkpoint(tiny_checkpoint)["train_args"]
    bare = forged(tiny_checkpoint, tmp_path / "bare.pt",
                  train_args={**args, "data_dir": None, "data_source": None})
    result = checkpoint_sensitivity(bare, chip_profile(), [DAY], 1, ["one-analog"], source(tiny_glue),
                                    eval_limit=2, progress=False)
    assert result.dev_examples == 2
    assert caplog.messages[-1].endswith("; static input ranges from the dev set")


@pytest.mark.parametrize("run", [checkpoint_sensitivity, checkpoint_placement])
def test_times_the_device_cannot_produce_are_refused(run, tmp_path):
    """Before the checkpoint is even read (there is none at this path)."""
    with pytest.raises(ImcSimError) as err:
        run(tmp_path / "none.pt", load_profile("reram"), [DAY, YEAR], 1)
    assert str(err.value) == RERAM


def test_placement_step_below_one_is_refused(tmp_path):
    with pytest.raises(ImcSimError) as err:
        checkpoint_placement(tmp_path / "none.pt", load_profile("ideal"), [DAY], 1, step=0)
    assert str(err.value) == "the step in layers kept digital must be at least 1, got 0"


def test_placement_defaults_to_every_count_with_progress(tiny_checkpoint, tiny_glue, capsys):
    """Step 1 (the default) over the 14 layers with the head: N = 0..14; ranked at the first time
    alone; both progress bars shown by default."""
    result = checkpoint_placement(tiny_checkpoint, load_profile("ideal"), [DAY, YEAR], 1,
                                  source=source(tiny_glue), eval_limit=1, analog_head=True)
    assert [p.keep_digital for p in result.curve] == list(range(15))
    assert result.ranked_at == "1d" and result.sensitivity.labels == ["1d"]
    assert result.sensitivity.analog_head is True and len(result.sensitivity.maps[0].layers) == 14
    assert [p.label for p in result.curve[0].points] == ["1d", "1y"]
    err = capsys.readouterr().err
    assert "sensitivity layers x seeds: 100%|██████████| 15/15 [" in err
    assert "placement N x seeds: 100%|██████████| 30/30 [" in err


def test_placement_with_a_step_and_no_progress(tiny_checkpoint, tiny_glue, capsys):
    """Step 5 over the 12 layers without the head: N = 0, 5, 10 and every layer (12)."""
    result = checkpoint_placement(tiny_checkpoint, load_profile("ideal"), [YEAR, DAY], 1, step=5,
                                  source=source(tiny_glue), eval_limit=2, progress=False)
    assert [p.keep_digital for p in result.curve] == [0, 5, 10, 12]
    assert result.ranked_at == "1y" and result.sensitivity.labels == ["1y"]
    assert result.sensitivity.analog_head is False and result.sensitivity.dev_examples == 2
    assert len(result.sensitivity.maps[0].layers) == 12
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("run", [checkpoint_sensitivity, checkpoint_placement])
@pytest.mark.parametrize("profile, times, seeds, message", [
    ("pcm", ["1d"], 0, "seeds is a count of chips from 1 to 100000, not 0"),
    ("pcm", [], 1, "no drift time given"),
    ("pcm", "1d", 1, "times is a list of drift times, not '1d'"),
    ("nosuch", ["1d"], 1, "unknown device 'nosuch'"),
])
def test_the_library_calls_check_their_arguments_before_reading(run, profile, times, seeds, message,
                                                                 tmp_path):
    """As deploy_checkpoint does: a profile's name, text times, a count of seeds; refused before
    the checkpoint is read (there is none at this path)."""
    with pytest.raises(ImcSimError, match=message):
        run(tmp_path / "none.pt", profile, times, seeds)


@pytest.mark.parametrize("modes, message", [
    ("one-analog", "modes is a non-empty list of one-analog, one-digital, not 'one-analog'"),
    ([], "modes is a non-empty list"), (["one-analog", "all"], "unknown sensitivity mode 'all'"),
])
def test_sensitivity_modes_are_checked_before_reading(modes, message, tmp_path):
    with pytest.raises(ImcSimError, match=message):
        checkpoint_sensitivity(tmp_path / "none.pt", "pcm", ["1d"], 1, modes)


def test_text_times_and_a_profile_name_work(tiny_checkpoint, tiny_glue):
    result = checkpoint_sensitivity(tiny_checkpoint, "ideal", ["1d"], 1, ["one-analog"], source(tiny_glue),
                                    eval_limit=2, progress=False)
    assert result.labels == ["1d"] and result.device == "ideal"


def test_a_glue_folder_may_be_given_as_data_dir(tiny_checkpoint, tiny_glue, monkeypatch):
    """As ``deploy_checkpoint`` takes it: the layer maps and multitask take ``data_dir`` too (the
    tiny dev set's examples, not those of $IMC_SIM_DATA's, which CI sets)."""
    from imc_sim.deploy.multitask import multitask_sweep

    monkeypatch.setenv("IMC_SIM_DATA", str(tiny_glue / "absent"))
    examples = len((tiny_glue / "SST-2" / "dev.tsv").read_text().splitlines()) - 1
    sensitivity = checkpoint_sensitivity(tiny_checkpoint, "ideal", ["1d"], 1, ["one-analog"], progress=False,
                                         data_dir=str(tiny_glue))
    placement = checkpoint_placement(tiny_checkpoint, "ideal", ["1d"], 1, step=12, progress=False,
                                     data_dir=str(tiny_glue))
    multitask = multitask_sweep([tiny_checkpoint], "ideal", ["1d"], 1, progress=False,
                                data_dir=str(tiny_glue))
    assert sensitivity.dev_examples == placement.sensitivity.dev_examples == examples
    assert multitask.tasks[0].dev_examples == examples
