"""Device-aware training on a tiny model: gradients, fresh noise per step, sigma-target auto."""

import numpy as np
import pytest
import torch
from conftest import make_tiny_bert, train_tiny

from imc_sim.checkpoint import read_checkpoint
from imc_sim.cli import main
from imc_sim.devices.profile import load_profile
from imc_sim.errors import ImcSimError
from imc_sim.training.analog_layers import analog_layers
from imc_sim.training.device_aware import DeviceTraining
from imc_sim.training.loop import TrainArgs, prepare
from imc_sim.training.sigma_target import sigma_target_auto

YEAR = 365 * 86400.0


def run_for(method, model_dir, glue, **options):
    return prepare(TrainArgs(method=method, model=str(model_dir), data_dir=str(glue), max_steps=3,
                             batch_size=8, device="pcm", drift="1d", method_options=options))


@pytest.mark.parametrize("method, adapter", [("stochgrasp", ("mu", "s")), ("grasp", ("gamma", "beta")),
                                             ("lora", ("lora_B",))])  # B = 0 at init: dA = 0
def test_gradients_reach_the_adapter_and_nothing_of_the_base(method, adapter, tiny_model_dir, tiny_glue):
    run = run_for(method, tiny_model_dir, tiny_glue, **({} if method == "lora" else {"k": 4}))
    assert len(run.device.names) == 2 * 6  # every analog layer, adapted or not
    run.step()
    for name, param in run.model.named_parameters():
        leaf = name.split(".")[-1] if "lora_" not in name else name.split(".")[-3]
        if param.requires_grad:
            assert param.grad is not None and torch.isfinite(param.grad).all(), name
        else:
            assert param.grad is None, name
        if leaf in adapter:
            assert param.requires_grad and param.grad.abs().sum() > 0, name
    frozen = [n for n, p in run.model.named_parameters() if not p.requires_grad]
    assert any("attention.self.query" in n for n in frozen)


def test_noise_is_fresh_every_training_forward_and_absent_in_eval(tiny_model_dir, tiny_glue):
    run = run_for("grasp-w", tiny_model_dir, tiny_glue, k=4)
    batch = {k: v for k, v in next(run.stream).items() if k != "labels"}
    model = run.model
    model.train()
    with torch.no_grad():
        a, b = model(**batch).logits, model(**batch).logits
    assert not torch.equal(a, b)
    model.eval()
    with torch.no_grad():
        c, d = model(**batch).logits, model(**batch).logits
    run.device.detach()
    with torch.no_grad():
        plain = model(**batch).logits
    assert torch.equal(c, d) and torch.equal(c, plain)


def test_device_changes_the_forward_and_the_context_restores_it(token_batch):
    model = make_tiny_bert().train()
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0  # training-mode forwards comparable value for value
    with torch.no_grad():
        clean = model.bert(**token_batch).last_hidden_state
    with DeviceTraining(model, load_profile("pcm"), (YEAR, YEAR)) as device, torch.no_grad():
        noisy = model.bert(**token_batch).last_hidden_state
        assert sum("forward" in vars(m) for m in model.modules()) == len(device.names)
    with torch.no_grad():
        again = model.bert(**token_batch).last_hidden_state
    assert (noisy - clean).abs().mean() > 1e-3 * clean.abs().mean()  # the device's noise
    assert [n for n, _ in analog_layers(model)] == device.names
    assert not any("forward" in vars(m) for m in model.modules())
    assert torch.equal(again, clean)
    device.detach()  # idempotent
    assert not model._forward_pre_hooks


def test_the_drift_time_is_drawn_from_the_seeded_generator_not_the_global_one():
    model = make_tiny_bert().train()
    torch.manual_seed(0)
    before = torch.get_rng_state()
    with DeviceTraining(model, load_profile("pcm"), (3600.0, YEAR), seed=5) as device:
        hook = next(iter(model._forward_pre_hooks.values()))
        clocks = []
        for _ in range(6):
            hook(model, ())
            clocks.append(device.forwards[0].clock[0])
    assert torch.equal(torch.get_rng_state(), before)
    stream = torch.Generator().manual_seed(5)
    n = len(device.tables.times)
    assert clocks == [int(torch.randint(n, (1,), generator=stream)) for _ in range(6)]


def test_sigma_target_auto_is_a_function_of_profile_and_time():
    model = make_tiny_bert()
    pcm = load_profile("pcm")
    one_day = sigma_target_auto(model, pcm, 86400.0)
    assert one_day == sigma_target_auto(model, pcm, 86400.0)
    assert 0 < one_day < 1
    assert sigma_target_auto(model, pcm, 10 * YEAR) > sigma_target_auto(model, pcm, 1.0)
    gaussian = sigma_target_auto(model, load_profile("gaussian"), 86400.0)
    assert gaussian == pytest.approx(0.01, rel=0.05)  # the gaussian profile's own sigma


@pytest.mark.parametrize("written, factor", [("auto", 1.0), ("auto*0.5", 0.5)])
def test_checkpoint_records_the_device_and_auto_sigma(written, factor, tmp_path, tiny_model_dir, tiny_glue):
    ckpt = train_tiny(tmp_path / "hw.pt", tiny_model_dir, tiny_glue, "--method", "stochgrasp",
                      "--k", "4", "--device", "pcm", "--drift", "1h..1y", "--sigma-target", written)
    data = read_checkpoint(ckpt)
    assert data["train_args"]["device"] == "pcm" and data["train_args"]["drift"] == "1h..1y"
    assert data["metrics"]["device"] == "pcm"
    model = make_tiny_bert(vocab_size=30522)
    assert data["config"]["sigma_target"] == pytest.approx(
        factor * sigma_target_auto(model, load_profile("pcm"), YEAR))


@pytest.mark.parametrize("extra, message", [
    (["--device", "gaussian", "--drift", "1h..1y"], "has no drift; a drift range 1h..1y"),
    (["--device", "pcm", "--drift", "1y..1h"], "starts after it ends"),
    (["--drift", "1d"], "--drift needs --device"),
    (["--method", "stochgrasp", "--sigma-target", "auto"], "--sigma-target auto needs --device"),
    (["--method", "stochgrasp", "--sigma-target", "auto*0.5"], "--sigma-target auto needs --device"),
    (["--method", "bitfit", "--device", "pcm"], "--device trains grasp, grasp-w, stochgrasp, lora"),
    (["--device", "reram", "--drift", "1h"], "only characterised at 1s, 1d, 2d"),
    (["--device-warmup", "0.5"], "--device-warmup needs --device"),
    (["--device", "pcm", "--device-warmup", "1.5"],
     "argument --device-warmup: must be below 1 (a fraction of the steps), got 1.5"),
])
def test_bad_device_training_input(extra, message, tmp_path, tiny_model_dir, tiny_glue, capsys):
    argv = ["train", "--model", str(tiny_model_dir), "--data-dir", str(tiny_glue), "--max-steps", "2",
            "--out", str(tmp_path / "m.pt"), "--quiet", *extra]
    try:
        status = main(argv)
    except SystemExit as usage:  # a value the option's argparse type refuses
        status = usage.code
    lines = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and message in lines[0]
    assert not (tmp_path / "m.pt").exists()


def test_device_training_refuses_a_model_without_blocks():
    with pytest.raises(ImcSimError, match="no Linear/Conv1D layer inside transformer blocks"):
        DeviceTraining(torch.nn.Sequential(torch.nn.Linear(4, 4)), load_profile("pcm"), (1.0, 1.0))


def test_weight_level_device_noise_is_exactly_the_profile_sigma():
    model = make_tiny_bert(hidden=128)
    device = DeviceTraining(model, load_profile("gaussian"), (1.0, 1.0))
    sampler = device.forwards[0].sampler
    w = torch.randn(512, 128) * 3  # far outside [-1, 1]: weight-level noise needs no mapping
    torch.manual_seed(0)
    u_t, scale = sampler.device_weights(w, 0, frozen=False)
    delta = u_t * scale - w
    assert delta.std().item() == pytest.approx(0.01, rel=0.03)
    assert abs(delta.mean().item()) < 1e-3
    device.detach()


def test_moment_tables_interpolate_the_measured_grid():
    from imc_sim.devices.moments import GRID, MomentTables

    tables = MomentTables.measure(load_profile("pcm"), [1.0, YEAR])
    grid = torch.linspace(-1, 1, GRID)
    mean, std = tables.lookup(grid, 1)
    torch.testing.assert_close(mean, tables.mean[1], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(std, tables.std[1], rtol=1e-5, atol=1e-6)
    u = torch.rand(1000) * 2 - 1
    expected = torch.from_numpy(np.interp(u.numpy(), grid.numpy(), tables.std[0].numpy())).float()
    torch.testing.assert_close(tables.lookup(u, 0)[1], expected, rtol=1e-4, atol=1e-6)
    assert tables.mean[1, -1] < 0.7 * tables.mean[0, -1]  # the largest state drifts down
    relative = tables.std[:, -1] / tables.mean[:, -1]
    assert relative[1] > relative[0]  # and its noise grows relative to it


@pytest.mark.parametrize("method", ["grasp", "grasp-w"])
def test_ideal_device_training_is_plain_training(method, token_batch):
    """On the ideal profile the chip's output is the digital product, and the gradients are
    plain training's (straight through the device), for every adapter and the head."""
    from imc_sim.peft import get_method

    def adapted():
        model = make_tiny_bert()
        m = get_method(method)
        model = m.attach(model, m.make_config({"k": 4, "seed": 0}))
        with torch.no_grad():
            for p in model.parameters():
                if p.requires_grad:
                    p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(3)))
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        return model.train()

    labels = torch.tensor([0, 1, 1])
    plain, device_model = adapted(), adapted()
    device = DeviceTraining(device_model, load_profile("ideal"), (1.0, 1.0))
    outputs = [m(**token_batch, labels=labels) for m in (plain, device_model)]
    for out in outputs:
        out.loss.backward()
    torch.testing.assert_close(outputs[1].logits, outputs[0].logits, rtol=1e-5, atol=1e-6)
    grads = [{n: p.grad for n, p in m.named_parameters() if p.requires_grad}
             for m in (plain, device_model)]
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 2
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, rtol=1e-4, atol=1e-6, msg=name)
    device.detach()


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled-draw", "lookup-draw"])
def test_training_forward_matches_the_deployed_chip_in_distribution(compiled, monkeypatch):
    """A frozen layer's training-time output (quantile tables, per-layer compensation) against
    deploy's CrossbarLinear (full aihwkit programming, drift and read noise, compensation read out
    through the periphery), each over many chips: per-output means agree within Monte-Carlo error
    and 3 %, stds within 25 %; with the compiled draw and with its torch fallback."""
    from imc_sim.crossbar import epilogue
    from imc_sim.devices.quantiles import QuantileTables
    from imc_sim.training.device_aware import DeviceSampler

    if compiled and not epilogue.AVAILABLE:
        pytest.skip("the C pass was not built (no compiler)")
    monkeypatch.setattr(epilogue, "use_compiled", compiled)
    from imc_sim.crossbar.streams import ChipStreams
    from imc_sim.crossbar.tiles import CrossbarLinear
    from imc_sim.devices import build_family

    pcm = load_profile("pcm")
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 12)
    x = torch.randn(1, 64)
    sampler = DeviceSampler(pcm, QuantileTables.measure(pcm, [86400.0]), ChipStreams(0), "layer")
    train = torch.cat([sampler.output(x, linear.weight, linear.bias, 0, frozen=True)
                       for _ in range(400)])
    chip = CrossbarLinear(linear, pcm, build_family(pcm))
    deployed = []
    with torch.no_grad():
        for seed in range(400):
            streams = ChipStreams(seed)
            chip.program(streams, "layer")
            chip.drift(86400.0, streams, "layer")
            deployed.append(chip(x))
    deployed = torch.cat(deployed)
    se = (train.var(0) / 400 + deployed.var(0) / 400).sqrt()
    # deploy reads its compensation gain out through the noisy periphery, which lowers its
    # outputs by about 1 % (measured over 2,000 chips): allowed for by the 3 % term
    assert ((train.mean(0) - deployed.mean(0)).abs() < 4 * se + 0.03 * deployed.mean(0).abs()).all()
    ratio = train.std(0) / deployed.std(0)
    assert ((ratio > 0.75) & (ratio < 1.25)).all(), ratio
    assert deployed.std(0).min() > 0.01 * linear(x).abs().mean()  # the noise is really there


def test_device_warmup_trains_digitally_first(tiny_model_dir, tiny_glue):
    run = prepare(TrainArgs(method="grasp", model=str(tiny_model_dir), data_dir=str(tiny_glue),
                            max_steps=4, batch_size=8, device="pcm", drift="1d", device_warmup=0.5,
                            method_options={"k": 4}))
    states = []
    for _ in range(4):
        run.step()
        states.append(run.device.enabled)
    assert states == [False, False, True, True]
