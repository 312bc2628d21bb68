"""Training on a torch device: fake CUDA steps of every method, --torch-device, out of memory,
device-neutral checkpoints, and the device-aware wrapper restoring the model on an exception."""

import json
import sys

import pytest
import torch
from conftest import make_tiny_bert, make_tiny_gpt2
from fake_cuda import backward, fake_cuda, move_to_fake_cuda

from imc_sim.checkpoint import load_adapted, load_model, read_checkpoint, trainable_state
from imc_sim.cli import main, run_script
from imc_sim.devices.profile import load_profile
from imc_sim.errors import ImcSimError
from imc_sim.peft import METHODS, get_method
from imc_sim.peft.grasp import GraspLayer
from imc_sim.peft.stochgrasp import StochGraspLayer
from imc_sim.training.device_aware import DeviceSampler, DeviceTraining

GROUPED = ("grasp", "grasp-w", "stochgrasp")
# lightning: an optional extra whose training forward reads values (tests/test_lightning_arm.py)
METHOD_OPTIONS = {name: {"k": 4} if name in GROUPED else {} for name in METHODS if name != "lightning"}
METHOD_OPTIONS["stochgrasp-weights"] = {"k": 4, "sampling": "weights"}


def adapted(arch: str, name: str):
    method = get_method(name.removesuffix("-weights"))
    config = method.make_config({"seed": 0, **METHOD_OPTIONS[name]})
    model = make_tiny_bert() if arch == "bert" else make_tiny_gpt2()
    return method, config, method.attach(model, config)


def fake_step(model, method, config):
    """Forward, loss (with the method's extra term), backward and an AdamW step on fake CUDA."""
    ids = torch.randint(1, 100, (3, 7), device="cuda:0")
    out = model(input_ids=ids, attention_mask=torch.ones_like(ids),
                labels=torch.tensor([0, 1, 1], device="cuda:0"))
    extra = method.extra_loss(model, config)
    backward(out.loss if extra is None else out.loss + extra)
    torch.optim.AdamW([p for p in model.parameters() if p.requires_grad]).step()
    return ids


@pytest.mark.parametrize("arch", ["bert", "gpt2"])
@pytest.mark.parametrize("name", list(METHOD_OPTIONS))
def test_training_step_on_fake_cuda_mixes_no_devices(arch, name, monkeypatch):
    """Any op mixing a CPU tensor into the CUDA step raises FakeTensorDeviceMismatchError."""
    method, config, model = adapted(arch, name)
    with fake_cuda(monkeypatch) as generator_devices:
        move_to_fake_cuda(model).train()
        ids = fake_step(model, method, config)
        trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        assert trainable and all(p.grad is not None and p.grad.device.type == "cuda"
                                 for _, p in trainable), [n for n, p in trainable if p.grad is None]
        assert all(p.device.type == "cuda" for p in model.parameters())
        if name.startswith("stochgrasp"):
            assert generator_devices and {d.type for d in generator_devices} == {"cuda"}
        merged = method.merge(model.eval())
        assert all(t.device.type == "cuda" for t in [*merged.parameters(), *merged.buffers()])
        assert merged(input_ids=ids).logits.device.type == "cuda"


@pytest.mark.parametrize("name", GROUPED)
def test_attaching_to_a_cuda_model_builds_the_adapter_there(name, monkeypatch):
    method = get_method(name)
    config = method.make_config({"seed": 0, "k": 4})
    model = make_tiny_bert()
    with fake_cuda(monkeypatch):
        model = method.attach(move_to_fake_cuda(model), config)
        layers = [m for m in model.modules() if isinstance(m, (GraspLayer, StochGraspLayer))]
        assert layers and all(t.device.type == "cuda" for m in layers
                              for t in [*m.parameters(), *m.buffers()])
        fake_step(model.train(), method, config)


def test_trainable_state_of_a_cuda_model_is_on_the_cpu(monkeypatch):
    method, _, model = adapted("bert", "grasp")
    with fake_cuda(monkeypatch):
        state = trainable_state(move_to_fake_cuda(model))
        assert state and {t.device.type for t in state.values()} == {"cpu"}


def test_stochgrasp_noise_never_touches_the_global_generator():
    for sampling in ("weights", "outputs"):
        _, _, model = adapted("bert", "stochgrasp")
        layer = next(m for m in model.modules() if isinstance(m, StochGraspLayer))
        layer.sampling = sampling
        layer.train()
        x = torch.randn(2, 5, 32)
        torch.manual_seed(0)
        before = torch.get_rng_state()
        first = layer(x)
        assert torch.equal(torch.get_rng_state(), before)
        assert layer.noise().device == layer.mu.device
        again = adapted("bert", "stochgrasp")[2]  # same seed, same layer name: same noise
        twin = next(m for m in again.modules() if isinstance(m, StochGraspLayer))
        twin.sampling = sampling
        twin.train()
        torch.testing.assert_close(twin(x), first)


def cli(tmp_path, model_dir, glue, *extra):
    return main(["train", "--model", str(model_dir), "--data-dir", str(glue), "--max-steps", "2",
                 "--batch-size", "8", "--out", str(tmp_path / "model.pt"), "--quiet", *extra])


@pytest.mark.parametrize(("extra", "message"), [
    (["--torch-device", "cuda"], "--torch-device cuda: no CUDA device is available here"),
    (["--torch-device", "cuda:1"], "--torch-device cuda:1: no CUDA device is available here"),
    (["--torch-device", "tpu"], "--torch-device must be auto, cpu, cuda or cuda:N"),
])
def test_missing_cuda_is_one_line(extra, message, tmp_path, tiny_model_dir, tiny_glue, capsys):
    if torch.cuda.is_available() and extra[1] != "tpu":
        pytest.skip("this machine has CUDA: asking for it is not an error here")
    assert cli(tmp_path, tiny_model_dir, tiny_glue, *extra) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "model.pt").exists()


def test_a_cuda_index_beyond_the_devices_is_refused(monkeypatch):
    from imc_sim.errors import ImcSimError
    from imc_sim.torch_device import resolve_torch_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ImcSimError, match="cuda:3: this machine has 1 CUDA device"):
        resolve_torch_device("cuda:3")
    assert resolve_torch_device("cuda:0") == torch.device("cuda", 0)


def test_out_of_memory_says_what_to_lower_and_writes_nothing(tmp_path, tiny_model_dir, tiny_glue,
                                                             capsys, monkeypatch):
    from imc_sim.training import loop

    def exhausted(self):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(loop.Run, "step", exhausted)
    (tmp_path / "model.pt").write_bytes(b"previous")
    assert cli(tmp_path, tiny_model_dir, tiny_glue, "--k", "4") == 2
    err = capsys.readouterr().err.strip()
    assert "out of memory" in err and "lower --batch-size or --max-length" in err
    assert len(err.splitlines()) == 1
    assert (tmp_path / "model.pt").read_bytes() == b"previous"


def test_checkpoint_state_is_on_the_cpu_and_loads_without_the_training_device(
        tmp_path, tiny_model_dir, tiny_glue, monkeypatch):
    assert cli(tmp_path, tiny_model_dir, tiny_glue, "--k", "4", "--torch-device", "cpu") == 0
    data = read_checkpoint(tmp_path / "model.pt")
    assert {t.device.type for t in data["state"].values()} == {"cpu"}
    assert data["metrics"]["torch_device"] == "cpu"
    loads = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(k) or real_load(*a, **k))
    load_adapted(tmp_path / "model.pt")
    assert loads and all(k.get("map_location") == "cpu" for k in loads)


class Boom(RuntimeError):
    pass


def test_exception_inside_a_device_aware_step_leaves_the_model_restored(token_batch, monkeypatch):
    model = make_tiny_bert().train()
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    with torch.no_grad():
        plain = model(**token_batch).logits
    calls = []

    def output(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # mid-forward: some layers have run on the device already
            raise Boom("the device failed")
        return real_output(self, *args, **kwargs)

    real_output = DeviceSampler.output
    monkeypatch.setattr(DeviceSampler, "output", output)
    with pytest.raises(Boom), DeviceTraining(model, load_profile("pcm"), (86400.0, 86400.0)):
        model(**token_batch)
    assert len(calls) == 3
    assert not any("forward" in vars(m) for m in model.modules())
    assert not model._forward_pre_hooks
    with torch.no_grad():
        assert torch.equal(model(**token_batch).logits, plain)


def test_a_failing_device_aware_run_leaves_the_checkpoint_untouched(tmp_path, tiny_model_dir,
                                                                    tiny_glue, monkeypatch):
    def output(self, *args, **kwargs):
        raise Boom("the device failed")

    monkeypatch.setattr(DeviceSampler, "output", output)
    (tmp_path / "model.pt").write_bytes(b"previous")
    with pytest.raises(Boom):
        cli(tmp_path, tiny_model_dir, tiny_glue, "--k", "4", "--device", "pcm")
    assert (tmp_path / "model.pt").read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # no temporary file left


def test_device_layers_train_only_the_matched_layers_against_the_device():
    """--device-layers: the matched layers see the device, the others compute their digital
    forward exactly; a pattern that matches nothing is a one-line error naming the layers."""
    model = adapted("bert", "grasp")[2]
    x = {"input_ids": torch.randint(5, 90, (2, 8), generator=torch.Generator().manual_seed(0))}
    model.train()
    with torch.no_grad():
        digital = {name: m(torch.ones(1, m.base.in_features)) for name, m in model.named_modules()
                   if isinstance(m, GraspLayer)}
    patterns = r"attention.output.dense,.*layer\.1\.output\.dense"
    with DeviceTraining(model, load_profile("pcm"), (86400.0, 86400.0), layers=patterns) as device:
        block = "bert.encoder.layer."
        assert device.names == [f"{block}0.attention.output.dense", f"{block}1.attention.output.dense",
                                f"{block}1.output.dense"]
        model(**x)
        with torch.no_grad():
            for name, m in model.named_modules():
                if isinstance(m, GraspLayer):
                    same = torch.equal(m(torch.ones(1, m.base.in_features)), digital[name])
                    assert same == (name not in device.names), name
    message = (r"^--device-layers pattern 'values' matches no analog layer \(the 12 analog layers run "
               r"from bert\.encoder\.layer\.0\.attention\.self\.query to "
               r"bert\.encoder\.layer\.1\.output\.dense\)$")
    with pytest.raises(ImcSimError, match=message):
        DeviceTraining(model, load_profile("pcm"), (86400.0, 86400.0), layers="query,values")
    with pytest.raises(ImcSimError, match="empty --device-layers"):
        DeviceTraining(model, load_profile("pcm"), (86400.0, 86400.0), layers=" , ")


def test_device_layers_match_a_peft_models_layers_by_their_deployed_names():
    """LoRA is wrapped by peft (``base_model.model.`` before every name): --device-layers matches
    the names deploy gives the merged layers, as for imc-sim's own adapters."""
    model = adapted("bert", "lora")[2]
    pattern = r"bert\.encoder\.layer\.1\.output\..*"  # a regular expression matches a whole name
    with DeviceTraining(model, load_profile("pcm"), (86400.0, 86400.0), layers=pattern) as device:
        assert device.names == ["base_model.model.bert.encoder.layer.1.output.dense"]


def test_device_layers_cli_records_them_and_needs_a_device(tmp_path, tiny_model_dir, tiny_glue, capsys):
    from imc_sim.deploy.run import device_trained

    assert cli(tmp_path, tiny_model_dir, tiny_glue, "--k", "4", "--device-layers", "query") == 2
    assert capsys.readouterr().err.strip() == "imc-sim: error: --device-layers needs --device"
    device = ("--k", "4", "--device", "pcm", "--device-layers")
    assert cli(tmp_path, tiny_model_dir, tiny_glue, *device, "nope") == 2
    err = capsys.readouterr().err.strip()
    assert "--device-layers pattern 'nope' matches no analog layer" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "model.pt").exists()
    assert cli(tmp_path, tiny_model_dir, tiny_glue, *device, "query") == 0
    assert device_trained(load_model(tmp_path / "model.pt").meta) == "pcm @ 1d, layers query"


def test_gpu_scale_without_the_device_or_out_of_its_memory_is_one_line(tmp_path, monkeypatch, capsys):
    sys.path.insert(0, str(__import__("conftest").REPO / "benchmarks"))
    gpu_scale = __import__("gpu_scale")
    out = tmp_path / "scale.json"
    cases = [(["--torch-device", "cuda"], "--torch-device cuda: no CUDA device is available here"),
             (["--torch-device", "cpu"], "out of memory on the torch device: lower --batch or --seq")]

    def exhausted(*_):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(gpu_scale, "bench_shape", exhausted)
    for argv, message in cases:
        monkeypatch.setattr(sys, "argv", ["gpu_scale.py", *argv, "--out", str(out)])
        with pytest.raises(SystemExit) as exited:
            run_script(gpu_scale.run)
        err = capsys.readouterr().err
        assert exited.value.code == 2 and err.startswith(f"gpu_scale.py: error: {message}")
        assert err.count("\n") == 1 and not out.exists()


def test_gpu_scale_calibrates_a_static_range_profile(tmp_path, monkeypatch):
    """pcm-chip (static input ranges) runs in the benchmark: its ranges come from the benchmark's
    own batches, once, before the timed realizations (it stopped with the one-line 'needs
    calibration data' error before)."""
    sys.path.insert(0, str(__import__("conftest").REPO / "benchmarks"))
    gpu_scale = __import__("gpu_scale")
    monkeypatch.setattr(gpu_scale, "build", lambda shape: __import__("conftest").make_tiny_bert())
    out = tmp_path / "scale.json"
    monkeypatch.setattr(sys, "argv", ["gpu_scale.py", "--torch-device", "cpu", "--device", "pcm-chip",
                                      "--batches", "1", "--batch", "2", "--seq", "8", "--seeds", "1",
                                      "--times", "1d", "--repeats", "1", "--steps", "0", "--skip-aihwkit",
                                      "--out", str(out)])
    gpu_scale.run()
    shape = json.loads(out.read_text())["shapes"][0]
    assert shape["realization_seconds"] > 0 and shape["sweep_realizations"] == 1
    meta = json.loads(out.read_text())["meta"]
    assert meta["host"]["cores"] >= 1 and meta["int8_limbs"] in (127, 63, None)
