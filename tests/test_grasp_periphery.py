"""GRASP in the periphery: the frozen base on the tiles, the adapter digital before the DAC; and
several tasks on one chip (``imc-sim multitask``), programmed once per seed."""

import copy
import dataclasses
import json
import sys

import pytest
import torch
import yaml
from conftest import REPO, make_tiny_bert, save_with_tokenizer, train_tiny
from test_fake_cuda_deploy import FakeCudaMethods, fake_cuda  # noqa: F401, F811 - a fixture

from imc_sim.checkpoint import load_adapted, load_model
from imc_sim.cli import main
from imc_sim.crossbar.mapping import deploy_model, share_tiles
from imc_sim.crossbar.tiles import CrossbarLinear
from imc_sim.data import DataSource
from imc_sim.deploy.chip import Chip
from imc_sim.deploy.multitask import multitask_sweep
from imc_sim.deploy.results import MultiTaskResult, load_result
from imc_sim.deploy.run import deploy_checkpoint
from imc_sim.devices.profile import load_profile, shipped_profiles
from imc_sim.peft import get_method
from imc_sim.peft.grasp.layer import GraspLayer


@pytest.fixture(scope="module")
def second_task(tmp_path_factory, tiny_model_dir, tiny_glue):
    """Another GRASP adapter (K=8, seed 1) on the same tiny base: a second 'task'."""
    return train_tiny(tmp_path_factory.mktemp("ckpt2") / "grasp-b.pt", tiny_model_dir, tiny_glue,
                      "--k", "8", "--seed", "1", "--lr", "0.05")


def logits(model, token_batch):
    with torch.no_grad():
        return model(**token_batch).logits


def periphery_chip(path, device, seed=0, t=3600.0):
    loaded = load_adapted(path)
    deployment = deploy_model(loaded.model, load_profile(device))
    chip = Chip(deployment, seed)
    chip.drift_to(t)
    return loaded.model, deployment


def merged_chip(path, device, seed=0, t=3600.0):
    loaded = load_model(path)
    deployment = deploy_model(loaded.model, load_profile(device))
    Chip(deployment, seed).drift_to(t)
    return loaded.model


def test_base_layers_go_on_tiles_and_keep_the_merged_layers_noise_names(tiny_checkpoint):
    model, deployment = periphery_chip(tiny_checkpoint, "ideal")
    grasp = {n: m for n, m in model.named_modules() if isinstance(m, GraspLayer)}
    assert len(grasp) == 12 and all(isinstance(m.base, CrossbarLinear) for m in grasp.values())
    assert set(deployment.layers) == {f"{n}.base" for n in grasp}
    assert {deployment.chip_name(n) for n in deployment.layers} == set(grasp)
    text = deployment.describe()
    assert text.startswith("mapped 12 layers onto ") and text.endswith(
        "; 12 adapters digital, before their tiles' DACs")


def test_ideal_periphery_equals_digital_and_merged(tiny_checkpoint, token_batch):
    digital = logits(load_adapted(tiny_checkpoint).model, token_batch)
    periphery, _ = periphery_chip(tiny_checkpoint, "ideal")
    merged = merged_chip(tiny_checkpoint, "ideal")
    torch.testing.assert_close(logits(periphery, token_batch), digital, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logits(merged, token_batch), digital, rtol=1e-5, atol=1e-5)


def strong_adapter(path):
    """The checkpoint unmerged with scales in [0.5, 1.5] and shifts in [-0.5, 0.5] (3 training steps
    leave gamma ~ 1, beta ~ 0), and the same model merged."""
    model = load_adapted(path).model
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for layer in model.modules():
            if isinstance(layer, GraspLayer):
                layer.gamma.copy_(0.5 + torch.rand(layer.k, generator=gen))
                layer.beta.copy_(torch.rand(layer.k, generator=gen) - 0.5)
    return model, get_method("grasp").merge(copy.deepcopy(model))


def test_noisy_periphery_and_merged_differ_but_are_finite(tiny_checkpoint, token_batch):
    unmerged, merged = strong_adapter(tiny_checkpoint)
    torch.testing.assert_close(logits(unmerged, token_batch), logits(merged, token_batch))
    hidden = []
    for model in (unmerged, merged):
        Chip(deploy_model(model, load_profile("pcm")), 0).drift_to(3600.0)
        with torch.no_grad():
            hidden.append(model(**token_batch, output_hidden_states=True).hidden_states[-1])
    assert torch.isfinite(hidden[0]).all() and torch.isfinite(hidden[1]).all()
    assert (hidden[0] - hidden[1]).abs().max() > 1e-2  # W on tiles fed x a + c vs diag(a) W fed x


def test_static_ranges_are_calibrated_on_the_transformed_inputs(tiny_checkpoint, token_batch):
    ranges = {}
    for name, loader in (("periphery", load_adapted), ("merged", load_model)):
        loaded = loader(tiny_checkpoint)
        deployment = deploy_model(loaded.model, load_profile("pcm-chip"))
        deployment.calibrate([token_batch])
        ranges[name] = {deployment.chip_name(n): layer.input_ranges for n, layer in deployment.layers.items()}
    assert ranges["periphery"].keys() == ranges["merged"].keys()
    # the tile of the periphery deployment sees x a + c, the merged one x: different ranges
    assert any(not torch.allclose(ranges["periphery"][n], ranges["merged"][n]) for n in ranges["merged"])


def test_deploy_cli_periphery_on_ideal_equals_digital(tiny_checkpoint, tiny_glue, tmp_path, capsys):
    out = tmp_path / "p.json"
    assert main(["deploy", str(tiny_checkpoint), "--grasp-periphery", "--device", "ideal", "--drift", "1d",
                 "--seeds", "2", "--data-dir", str(tiny_glue), "--json", str(out), "--quiet"]) == 0
    assert "adapters digital, before their tiles' DACs" in capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["name"].startswith("grasp periphery (")
    assert result["times"][0]["metrics"] == [result["digital_metric"]] * 2


@pytest.mark.parametrize("extra, message", [
    (("--keep-digital", "2"), "--keep-digital does not apply with --grasp-periphery"),
    (("--digital-layers", "ff2"), "--digital-layers does not apply with --grasp-periphery"),
])
def test_periphery_refuses_placement(tiny_checkpoint, tiny_glue, capsys, extra, message):
    assert main(["deploy", str(tiny_checkpoint), "--grasp-periphery", "--data-dir", str(tiny_glue),
                 "--quiet", *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_periphery_refuses_other_methods(tmp_path, tiny_model_dir, tiny_glue, capsys):
    bitfit = train_tiny(tmp_path / "bitfit.pt", tiny_model_dir, tiny_glue, "--method", "bitfit")
    for argv in (["deploy", str(bitfit), "--grasp-periphery"], ["multitask", str(bitfit)]):
        assert main([*argv, "--data-dir", str(tiny_glue), "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1
        needs = "--grasp-periphery" if argv[0] == "deploy" else "multitask"
        assert f"{needs} needs an activation-space GRASP checkpoint" in err and "is bitfit" in err


def test_multitask_programs_once_per_seed_and_ideal_equals_digital(
        tiny_checkpoint, second_task, tiny_glue, monkeypatch):
    calls = []
    program = Chip.program
    monkeypatch.setattr(Chip, "program", lambda self: (calls.append(self.seed), program(self))[1])
    result = multitask_sweep([tiny_checkpoint, second_task], load_profile("ideal"), [1.0, 86400.0], 3,
                             DataSource(data_dir=str(tiny_glue)), progress=False)
    assert calls == [0, 1, 2]
    assert [t.task for t in result.tasks] == ["sst2", "sst2"]
    for task in result.tasks:
        assert task.curve.points[0].metrics == (task.curve.digital_metric,) * 3


def test_multitask_task_equals_its_own_periphery_deploy_on_pcm(
        tiny_checkpoint, second_task, tiny_glue, tmp_path):
    """Same seed, same chip: a task read out beside another gets the numbers it gets alone (its
    static input ranges are its own, calibrated with its adapter in place)."""
    raw = yaml.safe_load(shipped_profiles()["pcm"].read_text())
    raw["periphery"].update(input_range="static", noise_management="none")
    (tmp_path / "pcm-static.yaml").write_text(yaml.safe_dump(raw))
    profile, times = load_profile(str(tmp_path / "pcm-static.yaml")), [3600.0, 3.15e7]
    source = DataSource(data_dir=str(tiny_glue))
    both = multitask_sweep([tiny_checkpoint, second_task], profile, times, 1, source, progress=False)
    assert both.mapping.input_ranges == "tasks' dev sets"  # recorded (it used to be None)
    for path, task in zip([tiny_checkpoint, second_task], both.tasks, strict=True):
        alone = deploy_checkpoint(path, profile, times, 1, source=source, progress=False,
                                  grasp_periphery=True)
        assert [p.metrics for p in task.curve.points] == [p.metrics for p in alone.curve.points]


def test_multitask_cli_writes_typed_json_and_png(tiny_checkpoint, second_task, tiny_glue, tmp_path, capsys):
    out = tmp_path / "m.json"
    assert main(["multitask", str(tiny_checkpoint), str(second_task), "--device", "pcm", "--drift", "1h",
                 "--seeds", "1", "--data-dir", str(tiny_glue), "--json", str(out), "--plot",
                 str(tmp_path / "m.png"), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "2 tasks share it" in printed and "sst2: grasp-b" in printed
    result = load_result(out)
    assert isinstance(result, MultiTaskResult) and len(result.tasks) == 2
    assert MultiTaskResult.from_json(json.loads(out.read_text())) == result
    assert (tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG"


def test_multitask_without_glue_data_names_only_its_own_options(tiny_checkpoint, tmp_path, monkeypatch,
                                                                 capsys):
    """No --data-dir, no $IMC_SIM_DATA, no datasets package: one line before any model loads, not
    the --validation-file that deploy would suggest (multitask has none)."""
    monkeypatch.delenv("IMC_SIM_DATA", raising=False)
    monkeypatch.setitem(sys.modules, "datasets", None)
    out = tmp_path / "m.json"
    assert main(["multitask", str(tiny_checkpoint), "--device", "ideal", "--seeds", "1",
                 "--json", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("imc-sim: error: multitask reads GLUE dev sets: pass --data-dir DIR (GLUE layout, "
                   "DIR/SST-2/dev.tsv, ...) or set $IMC_SIM_DATA; or `pip install datasets` to download "
                   "GLUE from the hub")
    assert not out.exists()


def test_multitask_refuses_different_base_weights(tiny_checkpoint, tmp_path, tiny_glue, capsys):
    other = make_tiny_bert(vocab_size=30522)
    with torch.no_grad():
        other.bert.encoder.layer[0].output.dense.weight.add_(0.01)
    other_dir = save_with_tokenizer(other, tmp_path / "other-base")
    other_ckpt = train_tiny(tmp_path / "other.pt", other_dir, tiny_glue, "--k", "4")
    capsys.readouterr()  # what saving and training wrote
    assert main(["multitask", str(tiny_checkpoint), str(other_ckpt), "--data-dir", str(tiny_glue),
                 "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "different base weights" in err


def test_experiment_script_pairs_chips_and_says_when_the_second_task_is_sst2(
        tmp_path, tiny_model_dir, tiny_glue, monkeypatch, capsys):
    sys.path.insert(0, str(REPO / "experiments"))
    import common
    import periphery_grasp

    for module in (common, periphery_grasp):
        monkeypatch.setattr(module, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(common, "RESULTS_MD", tmp_path / "results.md")
    monkeypatch.setattr(sys, "argv", ["periphery_grasp", "--model", str(tiny_model_dir), "--data-dir",
                                      str(tiny_glue), "--steps", "2", "--seeds", "2", "--drift", "1h"])
    periphery_grasp.main()
    assert "second SST-2 adapter" in capsys.readouterr().out
    compared = load_result(tmp_path / "results" / "periphery_grasp-full.json")
    assert [c.name for c in compared.checkpoints] == ["merged", "periphery"]
    multi = load_result(tmp_path / "results" / "periphery_grasp-full-multitask.json")
    assert isinstance(multi, MultiTaskResult) and len(multi.tasks) == 2 and multi.seeds == 2
    md = (tmp_path / "results.md").read_text()
    assert "periphery - merged (paired)" in md and "<!-- /periphery_grasp-full-multitask -->" in md


def test_two_tasks_on_one_chip_run_on_fake_cuda(fake_cuda):  # noqa: F811 - the imported fixture
    """Two adapted models sharing one chip's tiles, moved to (fake) CUDA: calibration with each
    adapter, programming, drift and each task's forward run there without mixing devices."""
    mode, to_cuda = fake_cuda
    grasp = get_method("grasp")
    models = [grasp.attach(make_tiny_bert(), grasp.make_config({"k": k})) for k in (4, 8)]
    deployment = deploy_model(models[0], load_profile("pcm-chip"))
    share_tiles(deployment, models[1])
    with mode, FakeCudaMethods():
        for model in models:
            model._apply(to_cuda)
        ids = torch.ones(3, 7, dtype=torch.long, device="cuda")
        batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        for model in models:
            dataclasses.replace(deployment, model=model).calibrate([batch])
        Chip(deployment, 1).drift_to(86400.0)
        for model in models:
            deployment.restart_reads()
            with torch.no_grad():
                assert model(**batch).logits.device.type == "cuda"
        assert {t.device.type for m in models for t in [*m.parameters(), *m.buffers()]} == {"cuda"}
