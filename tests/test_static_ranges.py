"""Static input ranges from training to deploy: device-aware training calibrates them once, the
checkpoint keeps them, deploy uses them on the same row tiles and calibrates otherwise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from conftest import make_tiny_bert, train_tiny

from imc_sim.calibration import training_batches
from imc_sim.checkpoint import load_model, read_checkpoint
from imc_sim.cli import main
from imc_sim.crossbar.input_ranges import Calibration, StoredRanges
from imc_sim.crossbar.mapping import deploy_model
from imc_sim.crossbar.streams import ChipStreams
from imc_sim.data import DataSource
from imc_sim.deploy.range_source import set_input_ranges
from imc_sim.devices.profile import PROFILE_DIR, DeviceProfile, profile_from_dict
from imc_sim.devices.quantiles import QuantileTables
from imc_sim.errors import ImcSimError
from imc_sim.training.analog_layers import analog_layers
from imc_sim.training.device_aware import DeviceSampler, DeviceTraining

ONE_DAY = 86400.0


def chip(tile_rows: int = 16) -> dict:
    """The shipped pcm profile with static input ranges (as pcm-chip has them, whose moment tables
    take longer to measure) on tiles of ``tile_rows`` x 16."""
    raw = yaml.safe_load(Path(PROFILE_DIR, "pcm.yaml").read_text())
    raw["periphery"] = {**raw["periphery"], "tile_rows": tile_rows, "tile_cols": 16,
                        "input_range": "static", "noise_management": "none"}
    return raw


def chip_profile(tile_rows: int = 16) -> DeviceProfile:
    return profile_from_dict(chip(tile_rows), "chip.yaml")


def chip_file(directory: Path, tile_rows: int = 16) -> str:
    path = directory / f"chip{tile_rows}.yaml"
    path.write_text(yaml.safe_dump(chip(tile_rows)))
    return str(path)


def token_batches(n: int = 3) -> list[dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(5)
    return [{"input_ids": (ids := torch.randint(1, 100, (4, 9), generator=gen)),
             "attention_mask": torch.ones_like(ids)} for _ in range(n)]


def direct_ranges(model: torch.nn.Module, batches, rows: int, percentile: float) -> list[torch.Tensor]:
    """Calibration of every analog layer's inputs over ``batches``, by plain hooks on the digital
    model in eval mode (no DeviceTraining involved)."""
    layers = [m for _, m in analog_layers(model)]
    calibrations = [Calibration(rows, percentile) for _ in layers]
    hooks = [m.register_forward_pre_hook(lambda _, a, c=c: c.add(a[0].reshape(-1, a[0].shape[-1])))
             for m, c in zip(layers, calibrations, strict=True)]
    model.eval()
    with torch.no_grad():
        for batch in batches:
            model(**batch)
    for hook in hooks:
        hook.remove()
    return [c.ranges() for c in calibrations]


def test_device_training_on_a_static_profile_calibrates_once_and_uses_the_ranges():
    """The ranges are a direct Calibration of the digital model over the same batches (row tiles
    of 16 of the 32- and 64-input layers), and every training forward divides by them."""
    profile, batches = chip_profile(), token_batches()
    model = make_tiny_bert()
    expected = direct_ranges(model, batches, 16, profile.periphery.input_percentile)
    model.train()
    with DeviceTraining(model, profile, (ONE_DAY, ONE_DAY)) as device:
        assert device.needs_ranges
        with pytest.raises(ImcSimError, match="needs them calibrated first"):
            model(**batches[0])
        device.calibrate(batches)
        assert not device.needs_ranges and model.training
        got = [f.sampler.ranges for f in device.forwards]
        assert [r.shape[0] for r in got] == [2, 2, 2, 2, 2, 4] * 2
        for r, e in zip(got, expected, strict=True):
            torch.testing.assert_close(r, e)
        out = model(**batches[0], labels=torch.tensor([0, 1, 1, 0]))
        out.loss.backward()
        assert torch.isfinite(out.logits).all()
        stored = device.stored_ranges()
    assert stored.fits(profile.periphery) and list(stored.layers) == device.names


def test_the_training_forward_clips_at_the_static_range_as_deploy_does():
    """An ideal device with exact converters: the layer's training output is the product of the
    inputs clipped at each row tile's range, as deploy's tile computes it."""
    profile = profile_from_dict({"name": "i", "description": "d", "source": "s", "model": "ideal",
                                 "periphery": {"dac_bits": "ideal", "adc_bits": "ideal", "out_noise": 0.0,
                                               "noise_management": "none", "tile_rows": 16,
                                               "tile_cols": 16, "input_range": "static"}})
    weight = torch.randn(24, 40, generator=torch.Generator().manual_seed(0))
    sampler = DeviceSampler(profile, QuantileTables.measure(profile, [1.0]), ChipStreams(0), "layer")
    sampler.ranges = torch.tensor([1.0, 2.0, 0.5])  # row tiles of 16, 16, 8 inputs
    x = torch.full((1, 40), 0.25)
    x[0, 3], x[0, 20], x[0, 35] = 5.0, -7.0, 0.75
    clipped = x.clone()
    clipped[0, 3], clipped[0, 20], clipped[0, 35] = 1.0, -2.0, 0.5
    torch.testing.assert_close(sampler.output(x, weight, None, 0, frozen=True), clipped @ weight.T,
                               rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def static_checkpoint(tmp_path_factory, tiny_model_dir, tiny_glue) -> Path:
    out = tmp_path_factory.mktemp("static")
    return train_tiny(out / "lora.pt", tiny_model_dir, tiny_glue, "--method", "lora",
                      "--device", chip_file(out), "--drift", "1d")


def test_the_checkpoint_keeps_the_training_ranges_by_deploy_name(static_checkpoint):
    raw = read_checkpoint(static_checkpoint)
    stored = StoredRanges.from_record(raw["input_ranges"])
    assert (stored.tile_rows, stored.tile_split) == (16, "fixed")
    loaded = load_model(static_checkpoint)  # LoRA merged: names without peft's wrapper
    deployment = deploy_model(loaded.model, chip_profile())
    assert set(stored.layers) == set(deployment.layers)
    assert all(stored.layers[n].shape == (layer.row_tiles,) for n, layer in deployment.layers.items())


def test_deploy_on_the_same_tiles_uses_the_checkpoint_ranges_not_the_dev_set(static_checkpoint):
    stored = StoredRanges.from_record(read_checkpoint(static_checkpoint)["input_ranges"])
    loaded = load_model(static_checkpoint)
    deployment = deploy_model(loaded.model, chip_profile())
    set_input_ranges(deployment, loaded, [])  # no dev batch: calibrating on it would fail
    assert deployment.input_ranges == "checkpoint"
    assert "static input ranges from the checkpoint" in deployment.describe()
    for name, layer in deployment.layers.items():
        assert torch.equal(layer.input_ranges, stored.layers[name])


def test_other_tiles_fall_back_to_the_recorded_training_data_then_the_dev_set(static_checkpoint, tiny_glue):
    loaded = load_model(static_checkpoint)
    batches = token_batches()  # other inputs than the tiny SST-2's (its dev set repeats its training set)
    deployment = deploy_model(loaded.model, chip_profile(tile_rows=8))
    set_input_ranges(deployment, loaded, batches)
    assert deployment.input_ranges == f"training data ({tiny_glue / 'SST-2' / 'train.tsv'})"
    from_training = {n: layer.input_ranges.clone() for n, layer in deployment.layers.items()}
    assert all(r.shape == (layer.row_tiles,) for r, layer in
               zip(from_training.values(), deployment.layers.values(), strict=True))
    set_input_ranges(deployment, loaded, batches, source="dev")
    assert deployment.input_ranges == "dev set"
    assert any(not torch.equal(layer.input_ranges, from_training[name])
               for name, layer in deployment.layers.items())
    args = loaded.meta["train_args"]  # GLUE found through $IMC_SIM_DATA: no path recorded
    args["data_dir"] = args["data_source"]["data_dir"] = None
    set_input_ranges(deployment, loaded, batches)
    assert deployment.input_ranges == "dev set"


def test_the_checkpoints_ranges_are_used_when_asked_for_by_name(static_checkpoint):
    loaded = load_model(static_checkpoint)
    deployment = deploy_model(loaded.model, chip_profile())
    set_input_ranges(deployment, loaded, [], source="checkpoint")
    assert deployment.input_ranges == "checkpoint"


def test_a_source_that_has_nothing_is_a_one_line_error_naming_the_way_out(static_checkpoint):
    loaded = load_model(static_checkpoint)
    deployment = deploy_model(loaded.model, chip_profile(tile_rows=8))
    with pytest.raises(ImcSimError, match=r"^the checkpoint holds no static input ranges for pcm's row "
                       r"tiles \(8 rows, fixed split, percentile 99\.995\): train it device-aware on "
                       r"such a profile, or pass --input-ranges auto$"):
        set_input_ranges(deployment, loaded, [], source="checkpoint")
    args = loaded.meta["train_args"]
    args["data_dir"] = args["data_source"]["data_dir"] = None
    with pytest.raises(ImcSimError, match=r"^the checkpoint records no training file that is here to "
                       r"calibrate static input ranges on: pass --input-ranges auto or dev$"):
        set_input_ranges(deployment, loaded, token_batches(), source="train")
    assert deployment.input_ranges is None


def test_the_training_file_ranges_are_those_training_would_calibrate(static_checkpoint, tiny_glue):
    """With the checkpoint's own token length and example limit (here other than the defaults:
    3 of the file's 8 distinct sentences, whose ranges differ from those of all 8)."""
    loaded = load_model(static_checkpoint)
    loaded.meta["train_args"].update(max_length=6, train_limit=3)
    deployment = deploy_model(loaded.model, chip_profile(tile_rows=8))
    set_input_ranges(deployment, loaded, [], source="train")
    found = {name: layer.input_ranges for name, layer in deployment.layers.items()}
    source = DataSource(data_dir=str(tiny_glue))

    def calibrated(limit: int | None) -> dict[str, torch.Tensor]:
        for layer in deployment.layers.values():
            layer.input_ranges = None
        deployment.calibrate(training_batches(source, loaded.task, loaded.tokenizer, 6, limit))
        return {name: layer.input_ranges for name, layer in deployment.layers.items()}

    expected, unlimited = calibrated(3), calibrated(None)
    assert any(not torch.equal(expected[name], unlimited[name]) for name in found)
    for name in found:
        torch.testing.assert_close(found[name], expected[name])


def test_deploy_cli_says_where_the_ranges_came_from(static_checkpoint, tiny_glue, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["deploy", str(static_checkpoint), "--device", chip_file(tmp_path), "--drift", "1d",
                 "--seeds", "1", "--data-dir", str(tiny_glue), "--quiet", "--json", str(out)]) == 0
    assert "static input ranges from the checkpoint" in capsys.readouterr().out
    assert json.loads(out.read_text())["mapping"]["input_ranges"] == "checkpoint"


def test_static_ranges_with_no_calibration_data_are_a_one_line_error(tiny_checkpoint, tiny_glue,
                                                                      tmp_path, capsys):
    """A checkpoint trained digitally holds no ranges: asking for the checkpoint's alone fails in
    one line, exit 2, before anything is written; so does calibrating training on no batch."""
    out = tmp_path / "r.json"
    code = main(["deploy", str(tiny_checkpoint), "--device", chip_file(tmp_path), "--drift", "1d",
                 "--seeds", "1", "--data-dir", str(tiny_glue), "--quiet", "--json", str(out),
                 "--input-ranges", "checkpoint"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "holds no static input ranges" in err and "\n" not in err
    assert not out.exists()
    assert main(["deploy", str(tiny_checkpoint), "--device", "pcm-chip", "--input-ranges", "x"]) == 2
    assert "--input-ranges must be one of" in capsys.readouterr().err
    device = DeviceTraining(make_tiny_bert().train(), chip_profile(), (ONE_DAY, ONE_DAY))
    with device, pytest.raises(ImcSimError, match="need calibration data"):
        device.calibrate([])


def test_after_a_digital_warm_up_the_ranges_are_those_of_the_model_the_device_first_sees(
        tmp_path, tiny_model_dir, tiny_glue):
    from imc_sim.training.loop import TrainArgs, prepare

    run = prepare(TrainArgs(method="grasp", model=str(tiny_model_dir), data_dir=str(tiny_glue),
                            max_steps=4, batch_size=8, device=chip_file(tmp_path), drift="1d",
                            device_warmup=0.5, method_options={"k": 4}, lr=0.05))
    with run.device:
        before = direct_ranges(run.model, run.calibration, 16, 99.995)
        for _ in range(2):
            run.model.train()
            run.step()
        assert run.device.needs_ranges  # two digital steps: not calibrated yet
        expected = direct_ranges(run.model, run.calibration, 16, 99.995)
        run.model.train()
        run.step()
        got = [f.sampler.ranges for f in run.device.forwards]
    for r, e in zip(got, expected, strict=True):
        torch.testing.assert_close(r, e)
    assert any(not torch.equal(r, b) for r, b in zip(got, before, strict=True))
    assert len(run.calibration) == 1 and run.calibration[0]["input_ids"].shape[0] == 32  # the tiny set


def test_a_language_model_keeps_its_ranges_and_falls_back_to_its_train_file(tmp_path, tiny_gpt2_lm_dir):
    from conftest import NEGATIVE, POSITIVE

    text = "\n".join(POSITIVE + NEGATIVE) + "\n"
    (tmp_path / "train.txt").write_text(text * 3)
    (tmp_path / "heldout.txt").write_text(text)
    out = tmp_path / "lm.pt"
    assert main(["train", "--task", "lm", "--model", str(tiny_gpt2_lm_dir), "--train-file",
                 str(tmp_path / "train.txt"), "--validation-file", str(tmp_path / "heldout.txt"),
                 "--max-length", "16", "--max-steps", "2", "--batch-size", "4", "--k", "4",
                 "--device", chip_file(tmp_path), "--out", str(out), "--quiet"]) == 0
    loaded = load_model(out)
    deployment = deploy_model(loaded.model, chip_profile())  # Conv1D layers, c_proj of 128 inputs
    set_input_ranges(deployment, loaded, [])
    assert deployment.input_ranges == "checkpoint"
    assert {layer.input_ranges.shape[0] for layer in deployment.layers.values()} == {2, 8}
    loaded = load_model(out)
    deployment = deploy_model(loaded.model, chip_profile(tile_rows=8))
    set_input_ranges(deployment, loaded, [])
    assert deployment.input_ranges == f"training data ({tmp_path / 'train.txt'})"
