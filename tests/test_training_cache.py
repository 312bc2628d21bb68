"""The cache of training runs (imc_sim.training.cache): a cached checkpoint is reused only for the
run that wrote it. Before session 29 it was keyed on its file name alone, so that
``drift_pcm.py --model other`` reused a checkpoint of another model, with exit 0."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from imc_sim.errors import ImcSimError
from imc_sim.peft import get_method
from imc_sim.training import cache
from imc_sim.training.loop import TrainArgs, TrainResult, recorded_args

progress_shown: list[bool] = []
"""The ``progress`` of each training the fake ran."""


@pytest.fixture
def fake_training(monkeypatch) -> list[TrainArgs]:
    """``train`` replaced by one that records its arguments and returns a minimal checkpoint of them."""
    calls: list[TrainArgs] = []
    progress_shown.clear()

    def train(args: TrainArgs, progress: bool = True) -> TrainResult:
        calls.append(args)
        progress_shown.append(progress)
        config = get_method(args.method).make_config({**args.method_options, "seed": args.seed})
        payload = {"base_model": {"kind": "hub", "name": "m"}, "task": "sst2", "method": args.method,
                   "config": config, "state": {}, "train_args": recorded_args(args),
                   "base_fingerprint": {"model_type": "bert", "hidden_size": 8, "num_layers": 1,
                                        "weight_sum": 1.0}}
        return TrainResult(None, None, payload, {})

    monkeypatch.setattr(cache, "train", train)
    return calls


def test_a_cached_run_trains_once_and_fresh_trains_again(tmp_path, fake_training):
    path = tmp_path / "m.pt"
    assert cache.train_cached(path, TrainArgs()) == path and path.is_file()
    cache.train_cached(path, TrainArgs())
    assert len(fake_training) == 1
    cache.train_cached(path, TrainArgs(), fresh=True)
    assert len(fake_training) == 2


@pytest.mark.parametrize(("changes", "shown"), [
    ({"max_steps": 300}, "max_steps: 1500 in the checkpoint, 300 asked for"),
    ({"model": "roberta-base"}, "model: None in the checkpoint, 'roberta-base' asked for"),
    ({"seed": 1}, "seed: 0 in the checkpoint, 1 asked for"),
    ({"method": "lora"}, "method: 'grasp' in the checkpoint, 'lora' asked for"),
])
def test_other_settings_are_refused_and_the_checkpoint_kept(changes, shown, tmp_path, fake_training):
    path = tmp_path / "grasp-k32-full.pt"
    cache.train_cached(path, TrainArgs())
    before = path.read_bytes()
    with pytest.raises(ImcSimError) as info:
        cache.train_cached(path, TrainArgs(**changes))
    assert str(info.value).startswith(
        f"the cached checkpoint {path} was trained with other settings ({shown}")
    assert "--fresh" in str(info.value)
    assert len(fake_training) == 1 and path.read_bytes() == before


def test_the_data_folder_is_compared_by_where_it_is(tmp_path, fake_training, monkeypatch):
    glue = tmp_path / "data" / "glue"
    glue.mkdir(parents=True)
    path = tmp_path / "m.pt"
    cache.train_cached(path, TrainArgs(data_dir=str(glue)))
    monkeypatch.chdir(tmp_path / "data")
    cache.train_cached(path, TrainArgs(data_dir="glue"))  # the same folder, relative
    cache.train_cached(path, TrainArgs(data_dir="../data/glue"))
    monkeypatch.setenv("IMC_SIM_DATA", str(glue))
    cache.train_cached(path, TrainArgs(data_dir=None))  # $IMC_SIM_DATA names it
    assert len(fake_training) == 1
    (tmp_path / "other").mkdir()
    with pytest.raises(ImcSimError, match="data_dir"):
        cache.train_cached(path, TrainArgs(data_dir=str(tmp_path / "other")))


def test_the_packaged_model_by_name_is_no_model_given(tmp_path, fake_training):
    path = tmp_path / "m.pt"
    cache.train_cached(path, TrainArgs(model=None))
    cache.train_cached(path, TrainArgs(model="minilm"))
    cache.train_cached(path, TrainArgs(model="all-MiniLM-L6-v2"))
    assert len(fake_training) == 1


def test_what_does_not_change_the_weights_is_not_compared(tmp_path, fake_training):
    path = tmp_path / "m.pt"
    cache.train_cached(path, TrainArgs(eval_limit=300))
    cache.train_cached(path, TrainArgs(eval_limit=None, torch_device="cpu"))
    assert len(fake_training) == 1


def test_a_field_the_checkpoint_did_not_record_is_named(tmp_path):
    recorded = recorded_args(TrainArgs())
    del recorded["mixed_precision"]
    assert cache.differences(recorded, TrainArgs()) == [
        "mixed_precision: not recorded in the checkpoint, 'no' asked for"]


def test_every_cached_run_is_checked_before_any_training(tmp_path, fake_training):
    cached = tmp_path / "a.pt"
    cache.train_cached(cached, TrainArgs(max_steps=10))
    runs = [(tmp_path / "new.pt", TrainArgs()), (cached, TrainArgs(max_steps=20))]
    with pytest.raises(ImcSimError, match="max_steps: 10 in the checkpoint, 20 asked for"):
        cache.train_all_cached(runs)
    assert len(fake_training) == 1 and not (tmp_path / "new.pt").exists()
    assert cache.train_all_cached(runs[:1]) == [tmp_path / "new.pt"]


def test_a_broken_cached_checkpoint_is_one_line(tmp_path):
    path = Path(tmp_path / "m.pt")
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ImcSimError, match="is not a readable imc-sim checkpoint"):
        cache.check_cached(path, TrainArgs())


def test_a_field_recorded_as_none_differs_from_one_not_recorded(tmp_path):
    """An older checkpoint that lacks a field counts as other settings even where the run asks for
    None (the field's meaning then is not known), not as the same run."""
    recorded = recorded_args(TrainArgs())
    assert recorded["device"] is None
    del recorded["device"]
    assert cache.differences(recorded, TrainArgs()) == [
        "device: not recorded in the checkpoint, None asked for"]


def test_list_fields_are_compared_item_by_item(tmp_path):
    """A data source's text columns are a list in the record: other columns are other settings."""
    from imc_sim.data import DataSource

    recorded = recorded_args(TrainArgs(data_source=DataSource(text_columns=("a",))))
    changed = cache.differences(recorded, TrainArgs(data_source=DataSource(text_columns=("b",))))
    assert len(changed) == 1 and changed[0].startswith("data_source: ")


def test_a_checkpoint_that_records_no_training_is_refused_naming_every_field(tmp_path, fake_training):
    """A checkpoint without train_args (written by hand or another tool): every field is "not
    recorded", listed one after another, and nothing is trained over it."""
    from imc_sim.checkpoint import read_checkpoint, save_checkpoint

    path = tmp_path / "m.pt"
    cache.train_cached(path, TrainArgs())
    payload = read_checkpoint(path)
    del payload["train_args"]
    save_checkpoint(path, payload)
    with pytest.raises(ImcSimError) as info:
        cache.train_cached(path, TrainArgs())
    assert ("(method: not recorded in the checkpoint, 'grasp' asked for; task: not recorded in the "
            "checkpoint, 'sst2' asked for; ") in str(info.value)
    assert len(fake_training) == 1


def test_fresh_trains_again_over_a_checkpoint_of_other_settings(tmp_path, fake_training):
    path = tmp_path / "m.pt"
    cache.train_all_cached([(path, TrainArgs(max_steps=10))])
    assert cache.train_all_cached([(path, TrainArgs(max_steps=20))], fresh=True) == [path]
    assert [a.max_steps for a in fake_training] == [10, 20]


@pytest.mark.parametrize(("options", "shown"), [
    ({"k": 8}, "method option k: 32 in the checkpoint, 8 asked for"),
    ({"targets": "ff2"}, "method option targets: 'all-linear' in the checkpoint, 'ff2' asked for"),
    ({"learn_scale": False}, "method option learn_scale: True in the checkpoint, False asked for"),
])
def test_a_checkpoint_of_other_method_options_is_refused(options, shown, tmp_path, fake_training):
    """The training audit: options live in the config, which the cache did not compare, so a K=4
    checkpoint came back for a K=8 run."""
    path = tmp_path / "grasp.pt"
    cache.train_cached(path, TrainArgs(method_options={"k": 32}))
    cache.train_cached(path, TrainArgs())  # K=32 is GRASP's default: the same config
    with pytest.raises(ImcSimError, match=re.escape(f"other settings ({shown})")):
        cache.train_cached(path, TrainArgs(method_options=options))
    assert len(fake_training) == 1


def test_an_auto_sigma_target_is_not_compared_and_a_tuple_equals_its_list(tmp_path, fake_training):
    path = tmp_path / "stochgrasp.pt"
    asked = TrainArgs(method="stochgrasp", device="gaussian", method_options={"sigma_target": "auto"})
    cache.train_cached(path, asked)
    from imc_sim.checkpoint import read_checkpoint, save_checkpoint

    payload = read_checkpoint(path)
    payload["config"] = {**payload["config"], "sigma_target": 0.02, "sigma_init": [0.001, 0.005]}
    save_checkpoint(path, {k: v for k, v in payload.items() if k not in ("format", "version")})
    cache.train_cached(path, asked)  # auto became a number in training; the list is the tuple
    assert len(fake_training) == 1
    with pytest.raises(ImcSimError, match="method option sigma_target: 0.02 in the checkpoint, 0.01 asked"):
        cache.train_cached(path, TrainArgs(method="stochgrasp", device="gaussian"))


def test_the_data_folder_of_imc_sim_data_is_recorded_and_compared(tmp_path, fake_training, monkeypatch):
    """The training audit: with no data_dir the checkpoint recorded None, so a run with another
    $IMC_SIM_DATA reused a checkpoint of other data."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.setenv("IMC_SIM_DATA", str(tmp_path / "a"))
    path = tmp_path / "m.pt"
    cache.train_cached(path, TrainArgs())
    assert fake_training and recorded_args(TrainArgs())["data_dir"] == str(tmp_path / "a")
    monkeypatch.setenv("IMC_SIM_DATA", str(tmp_path / "b"))
    with pytest.raises(ImcSimError, match="data_dir: "):
        cache.train_cached(path, TrainArgs())


def test_the_default_rate_written_out_is_no_rate_given_and_progress_is_passed_on(tmp_path, fake_training):
    path = tmp_path / "m.pt"
    cache.train_cached(path, TrainArgs(), progress=False)
    cache.train_cached(path, TrainArgs(lr=5e-3))  # GRASP's default rate, written out
    assert len(fake_training) == 1 and progress_shown == [False]
    with pytest.raises(ImcSimError, match="lr: 0.005 in the checkpoint, 0.001 asked for"):
        cache.train_cached(path, TrainArgs(lr=1e-3))
