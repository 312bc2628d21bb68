"""``deploy_checkpoint`` and ``dev_set`` (imc_sim.deploy.run) as a library call: what the result
records, the head on tiles, the times a profile refuses, and the dev set cut to the training
length and to --eval-limit (the mutants session 29's mutation run found unchecked)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import forged

from imc_sim import data
from imc_sim.checkpoint import load_model, read_checkpoint
from imc_sim.deploy import run
from imc_sim.deploy.placement import Placement
from imc_sim.deploy.run import deploy_checkpoint, dev_set, device_trained
from imc_sim.devices.profile import load_profile
from imc_sim.errors import ImcSimError

DAY = 86400.0


@pytest.mark.parametrize("analog_head", [False, True])
def test_the_result_records_the_checkpoint_the_profile_file_and_the_head(analog_head, tiny_checkpoint: Path,
                                                                         tiny_glue: Path):
    pcm = load_profile("pcm")
    result = deploy_checkpoint(tiny_checkpoint, pcm, [DAY], 1, str(tiny_glue), 8, analog_head=analog_head,
                               progress=False)
    assert result.curve.path == str(tiny_checkpoint) and result.curve.device_trained is None
    assert result.device_file == pcm.path and pcm.path.endswith("pcm.yaml")
    assert result.analog_head is analog_head
    # the tiny BERT: 12 Linear layers in its blocks, plus pooler and classifier when the head is analog
    assert result.curve.mapping.analog_layers == (14 if analog_head else 12)


def test_a_time_the_profile_cannot_produce_is_refused_before_loading(tiny_checkpoint: Path, monkeypatch):
    monkeypatch.setattr(run, "load_scored", lambda *a, **k: pytest.fail("loaded before the times' check"))
    with pytest.raises(ImcSimError, match="reram"):
        deploy_checkpoint(tiny_checkpoint, load_profile("reram"), [365 * DAY], 1, progress=False)


def test_the_dev_set_is_cut_to_the_training_length(tiny_checkpoint: Path, tiny_glue: Path):
    loaded = load_model(tiny_checkpoint)
    source = data.DataSource(data_dir=str(tiny_glue))
    full = max(b["input_ids"].shape[1] for b in dev_set(loaded, source, None)[0])
    loaded.meta["train_args"]["max_length"] = 6
    batches, size = dev_set(loaded, source, None)
    assert full > 6 and max(b["input_ids"].shape[1] for b in batches) == 6 and size > 0


def test_a_language_models_held_out_text_is_cut_to_the_limit(lm_checkpoint: Path, lm_corpus: Path):
    loaded = load_model(lm_checkpoint)
    source = data.DataSource(validation_file=str(lm_corpus / "heldout.txt"))
    _, every = dev_set(loaded, source, None)
    _, limited = dev_set(loaded, source, 6)
    assert 0 < limited < every


@pytest.mark.parametrize("meta, expected", [
    ({}, None),
    ({"train_args": {"device": None}}, None),
    ({"train_args": {"device": "pcm", "drift": None}}, "pcm @ 1d"),
    ({"train_args": {"device": "pcm", "drift": "1h..1y", "device_warmup": 0.75}},
     "pcm @ 1h..1y, after 75% digital"),
    ({"train_args": {"device": "pcm-chip", "drift": "1d", "device_warmup": None, "device_layers": "ff1"}},
     "pcm-chip @ 1d, layers ff1"),
])
def test_how_a_device_trained_checkpoint_is_described(meta, expected):
    assert device_trained(meta) == expected


def test_placement_keeps_the_head_digital_when_the_head_is_analog(tiny_checkpoint: Path, tiny_glue: Path):
    result = deploy_checkpoint(tiny_checkpoint, "pcm", [DAY], 1, str(tiny_glue), 8, analog_head=True,
                               placement=Placement(digital_layers=["classifier"]), progress=False)
    assert result.curve.mapping.analog_layers == 13  # the pooler on tiles, the classifier kept digital
    assert result.curve.mapping.placement.digital_layers == ("classifier",)


def test_the_result_says_how_a_device_trained_checkpoint_was_trained(tiny_checkpoint: Path, tiny_glue: Path,
                                                                     tmp_path: Path):
    train_args = {**read_checkpoint(tiny_checkpoint)["train_args"], "device": "pcm", "drift": "1d"}
    path = forged(tiny_checkpoint, tmp_path / "device.pt", train_args=train_args)
    result = deploy_checkpoint(path, "pcm", [DAY], 1, str(tiny_glue), 8, progress=False)
    assert result.curve.device_trained == "pcm @ 1d"
