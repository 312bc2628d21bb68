"""--method lightning (aihwkit-lightning's hardware-aware fine-tuning, an optional extra): a short
run gives an ordinary ``full`` checkpoint of clipped weights that deploys without the package, and
a missing package is a one-line error."""

import importlib.util
import json
import os
import sys

import pytest
import torch
from conftest import make_tiny_bert, save_with_tokenizer, train_tiny
from fake_cuda import DEVICE, fake_cuda, move_to_fake_cuda

from imc_sim.checkpoint import read_checkpoint
from imc_sim.cli import main
from imc_sim.peft.lightning import MISSING, LightningRecipe, analog_linears
from imc_sim.peft.methods import get_method
from imc_sim.training.loop import TrainArgs, prepare, train

NOT_INSTALLED = "aihwkit-lightning not installed (pip install imc-sim[lightning])"
INSTALLED = importlib.util.find_spec("aihwkit_lightning") is not None
if not INSTALLED and os.environ.get("CI") == "true":  # the [dev] extra installs it: CI must run these
    raise RuntimeError(f"CI=true but {NOT_INSTALLED}")
needs_lightning = pytest.mark.skipif(not INSTALLED, reason=NOT_INSTALLED)


def hide_lightning(monkeypatch) -> None:
    """Make every ``import aihwkit_lightning...`` fail, as where the extra is not installed."""
    for name in [n for n in sys.modules if n.startswith("aihwkit_lightning.")] + ["aihwkit_lightning"]:
        monkeypatch.setitem(sys.modules, name, None)


@needs_lightning
def test_two_steps_give_a_full_checkpoint_that_deploys_without_the_package(
        tmp_path, tiny_model_dir, tiny_glue, monkeypatch):
    ckpt = train_tiny(tmp_path / "lightning.pt", tiny_model_dir, tiny_glue, "--method", "lightning",
                      "--max-steps", "2")
    data = read_checkpoint(ckpt)
    assert data["method"] == "full" and data["train_args"]["method"] == "lightning"
    assert data["metrics"]["method"] == "lightning" and data["config"]["weight_noise"] == 0.05
    assert not any("input_range" in name for name in data["state"])  # plain Linear names only
    hide_lightning(monkeypatch)
    assert main(["deploy", str(ckpt), "--data-dir", str(tiny_glue), "--device", "pcm", "--drift", "1d",
                 "--seeds", "1", "--quiet", "--json", str(tmp_path / "out.json")]) == 0
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["mapping"]["analog_layers"] == 2 * 6
    assert 0.0 <= result["times"][0]["mean"] <= 1.0


@needs_lightning
def test_saved_weights_are_the_clipped_ones_and_input_ranges_are_learned(tmp_path, tiny_glue):
    model = make_tiny_bert(vocab_size=30522)
    query = model.bert.encoder.layer[0].attention.self.query
    with torch.no_grad():
        query.weight[0, 0] = 1.0  # 50 std of the random init: an outlier the recipe must clip
    model_dir = save_with_tokenizer(model, tmp_path / "outlier-bert")
    result = train(TrainArgs(method="lightning", model=str(model_dir), data_dir=str(tiny_glue),
                             max_steps=2, batch_size=8), progress=False)
    layers = analog_linears(result.model)
    assert len(layers) == 2 * 6
    sigma = LightningRecipe().clip_sigma
    clipped = 0
    for name, layer in layers:
        w = layer.weight.detach()
        bound = sigma * w.std(1, keepdim=True)
        saved = result.payload["state"][f"{name}.weight"]
        assert torch.equal(saved, w.clamp(-bound, bound)) and (saved.abs() <= bound).all()
        clipped += int((w.abs() > bound).sum())
        assert layer.input_range.requires_grad and not torch.equal(  # set from the data, not 3.0
            layer.input_range.detach(), torch.full_like(layer.input_range, 3.0))
    assert clipped > 0
    assert result.payload["state"]["bert.encoder.layer.0.attention.self.query.weight"][0, 0] < 0.25


@needs_lightning
def test_conversion_and_merge_stay_on_the_models_device(monkeypatch):
    """On fake CUDA, where any op mixing devices raises: the analog layers are made, evaluate and
    merge back on the model's device. (The library's training forward reads values, which fake
    tensors do not have, to initialise its input ranges.)"""
    method = get_method("lightning")
    with fake_cuda(monkeypatch):
        model = method.attach(move_to_fake_cuda(make_tiny_bert()), method.build_config({})).eval()
        assert len(analog_linears(model)) == 2 * 6
        assert model(input_ids=torch.ones(2, 8, dtype=torch.long, device=DEVICE)).logits.device.type == "cuda"
        merged = method.merge(model)
        assert not analog_linears(merged)
        assert {p.device.type for p in merged.parameters()} == {"cuda"}


@needs_lightning
def test_digital_warmup_runs_the_plain_unclipped_product_then_the_recipe(tiny_model_dir, tiny_glue):
    run = prepare(TrainArgs(method="lightning", model=str(tiny_model_dir), data_dir=str(tiny_glue),
                            max_steps=4, batch_size=8, device_warmup=0.5,
                            method_options={"weight_noise": 0.02, "clip_sigma": 3.0}))
    assert (run.config["weight_noise"], run.config["clip_sigma"]) == (0.02, 3.0)
    _, layer = analog_linears(run.model)[0]
    assert layer.rpu_config.modifier.std_dev == 0.02 and layer.rpu_config.clip.sigma == 3.0
    modes = []
    for _ in range(4):
        run.step()
        modes.append(layer.digital)
    assert modes == [True, True, False, False]

    x = torch.randn(5, layer.in_features)
    with torch.no_grad():
        outlier = 50 * layer.weight.std()  # a weight the recipe clips and the warm-up keeps
        layer.weight[0, 0] = outlier
        bound = 3.0 * layer.weight[0].std()
        layer.digital = True
        assert torch.equal(layer(x), torch.nn.functional.linear(x, layer.weight, layer.bias))
        assert layer.weight[0, 0] == outlier
        layer.digital = False
        layer(x)
    assert layer.weight[0, 0] < outlier and torch.isclose(layer.weight[0, 0], bound)


def test_missing_package_is_one_line_error(tmp_path, tiny_model_dir, tiny_glue, monkeypatch, capsys):
    hide_lightning(monkeypatch)
    out = tmp_path / "never.pt"
    assert main(["train", "--method", "lightning", "--model", str(tiny_model_dir), "--data-dir",
                 str(tiny_glue), "--max-steps", "1", "--out", str(out), "--quiet"]) == 2
    assert capsys.readouterr().err == f"imc-sim: error: {MISSING}\n"
    assert not out.exists()
