"""Device-aware training, the values mutation testing found unchecked (docs/mutation.md): the drift
grid, the mapping scale, LoRA's effective weight and branch, the drift compensation's gains in
closed form, the clock's time reaching the layer, one stream per layer, and the restore."""

import dataclasses

import pytest
import torch
from conftest import make_tiny_bert, make_tiny_gpt2

from imc_sim.crossbar import epilogue
from imc_sim.crossbar.streams import ChipStreams
from imc_sim.devices.family import ReadNoise
from imc_sim.devices.moments import GRID
from imc_sim.devices.profile import load_profile
from imc_sim.devices.quantiles import LEVELS, QuantileTables
from imc_sim.errors import ImcSimError
from imc_sim.peft import get_method
from imc_sim.training import device_aware
from imc_sim.training.analog_layers import analog_layers
from imc_sim.training.device_aware import (
    RANGE_POINTS,
    DeviceSampler,
    DeviceTraining,
    drift_grid,
    effective_weight,
    mapping_scale,
)

YEAR = 365 * 86400.0
PATHS = [pytest.param(True, id="compiled-draw"), pytest.param(False, id="lookup-draw")]


def with_periphery(name: str, **changes):
    profile = load_profile(name)
    return dataclasses.replace(profile, periphery=dataclasses.replace(profile.periphery, **changes))


def without_read_noise(profile):
    """``profile`` without its per-read weight noise (U_t then is the drifted state itself)."""
    return dataclasses.replace(profile, read_noise={**profile.read_noise, "per_read": 0.0})


def draw_path(compiled: bool, monkeypatch) -> None:
    if compiled and not epilogue.AVAILABLE:
        pytest.skip("the C pass was not built (no compiler)")
    monkeypatch.setattr(epilogue, "use_compiled", compiled)


def no_dropout(model):
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    return model


def test_drift_grid_is_one_time_or_log_spaced_from_start_to_end():
    assert drift_grid(5.0, 5.0) == [5.0]
    grid = drift_grid(10.0, 1e8)
    assert len(grid) == RANGE_POINTS
    assert grid[0] == pytest.approx(10.0) and grid[-1] == pytest.approx(1e8)
    ratios = [b / a for a, b in zip(grid, grid[1:], strict=False)]
    assert ratios == pytest.approx([10 ** (7 / (RANGE_POINTS - 1))] * (RANGE_POINTS - 1))
    assert drift_grid(0.0, 1e3)[0] == pytest.approx(1e-3)  # a range from 0 starts at 1 ms


def test_mapping_scale_per_column_per_layer_and_weight_level():
    w = torch.tensor([[1.0, -3.0], [0.5, 0.2]])
    pcm_column = with_periphery("pcm", weight_scaling="per-column")
    assert torch.equal(mapping_scale(pcm_column, w), torch.tensor([[3.0], [0.5]]))
    for scaling in ("per-tile", "none"):  # conductances always map: the layer's max |w|
        pcm = with_periphery("pcm", weight_scaling=scaling)
        assert torch.equal(mapping_scale(pcm, w), torch.tensor(3.0))
        assert torch.equal(mapping_scale(pcm, 0.01 * w), torch.tensor(0.03))
        assert torch.equal(mapping_scale(pcm, torch.zeros(2, 2)), torch.tensor(1e-12))
    gaussian = load_profile("gaussian")
    assert gaussian.periphery.weight_scaling == "none"
    assert torch.equal(mapping_scale(gaussian, w), torch.tensor(1.0))  # weight-level: no mapping
    gaussian_column = with_periphery("gaussian", weight_scaling="per-column")
    assert torch.equal(mapping_scale(gaussian_column, w), torch.tensor([[3.0], [0.5]]))


@pytest.mark.parametrize("arch", ["bert", "gpt2"])  # Linear (fan_in_fan_out False) and Conv1D (True)
def test_lora_effective_weight_is_w_plus_scaling_b_a(arch):
    lora = get_method("lora")
    model = lora.attach(make_tiny_bert() if arch == "bert" else make_tiny_gpt2(),
                        lora.make_config({"seed": 0}))
    generator = torch.Generator().manual_seed(1)
    checked = 0
    for _, module in analog_layers(model):
        if not hasattr(module, "lora_B"):
            continue
        with torch.no_grad():
            module.lora_B["default"].weight.copy_(
                torch.randn(module.lora_B["default"].weight.shape, generator=generator))
        a, b = module.lora_A["default"].weight, module.lora_B["default"].weight
        base = module.base_layer.weight.T if arch == "gpt2" else module.base_layer.weight
        w, bias = effective_weight(module)
        torch.testing.assert_close(w, base + module.scaling["default"] * b @ a)
        assert bias is module.base_layer.bias
        checked += 1
    assert checked > 0


def sampler(profile, times, name="layer", seed=0):
    return DeviceSampler(profile, QuantileTables.measure(profile, times), ChipStreams(seed), name)


@pytest.mark.parametrize("compiled", PATHS)
@pytest.mark.parametrize("compensation", ["none", "global", "per-column"])
def test_out_scale_is_mapping_times_the_compensation_gain(compensation, compiled, monkeypatch):
    """out_scale = m (none), m sum|u| / sum|U_t| (global), m_i sum_j|u_ij| / sum_j|U_t,ij|
    (per-column), with m the per-column mapping scale."""
    draw_path(compiled, monkeypatch)
    pcm = without_read_noise(dataclasses.replace(load_profile("pcm"), compensation=compensation))
    w = torch.randn(6, 40, generator=torch.Generator().manual_seed(0)) * torch.arange(1.0, 7.0)[:, None]
    m = w.abs().amax(1, keepdim=True)
    u = w / m
    u_t, scale = sampler(pcm, [YEAR]).device_weights(w, 0, frozen=False)
    assert u_t.shape == w.shape and scale.shape == (6,)
    gain = {"none": torch.ones(6), "global": u.abs().sum() / u_t.abs().sum(),
            "per-column": u.abs().sum(1) / u_t.abs().sum(1)}[compensation]
    torch.testing.assert_close(scale, m.view(-1) * gain)


@pytest.mark.parametrize("compiled", PATHS)
@pytest.mark.parametrize("name, key", [("pcm", "per_read"), ("fefet", "relative")])
def test_one_reads_weight_noise_is_drawn_on_the_drifted_weights(name, key, compiled, monkeypatch):
    """U_t = the drifted state (the same draw as without read noise) + sqrt(var(state)) z', var the
    family's per-read law (pcm: per_read^2 |u|; fefet: c0 + c1 |u| + c2 u^2) plus w_noise^2; the
    compensation gain is the drifted state's."""
    draw_path(compiled, monkeypatch)
    profile = with_periphery(name, w_noise=0.01)
    quiet = dataclasses.replace(with_periphery(name, w_noise=0.0),
                                read_noise={**profile.read_noise, key: 0.0})
    w = torch.randn(64, 512, generator=torch.Generator().manual_seed(1))
    noisy_t, noisy_scale = sampler(profile, [YEAR]).device_weights(w, 0, frozen=False)
    state, scale = sampler(quiet, [YEAR]).device_weights(w, 0, frozen=False)
    torch.testing.assert_close(noisy_scale, scale)
    law = device_aware.read_noise(device_aware.build_family(profile), 0.01)
    assert law.c0 >= 0.01**2 and (law.c1 > 0 if name == "pcm" else law.c2 > 0)
    z = (noisy_t - state) / law.variance(state).sqrt()
    assert abs(z.mean().item()) < 0.02 and abs(z.std().item() - 1.0) < 0.02
    assert abs((z * state.sign()).mean().item()) < 0.02  # no pull towards or away from zero


@pytest.mark.parametrize("compiled", PATHS)
@pytest.mark.parametrize("compensation", ["global", "per-column"])
def test_gain_of_a_layer_whose_drifted_sum_is_below_one(compensation, compiled, monkeypatch):
    draw_path(compiled, monkeypatch)
    pcm = without_read_noise(dataclasses.replace(with_periphery("pcm", weight_scaling="none"),
                                                 compensation=compensation))
    w = torch.tensor([[0.2, 0.4]])
    u_t, scale = sampler(pcm, [YEAR]).device_weights(w, 0, frozen=False)
    assert u_t.abs().sum() < 1  # where a wrong floor of 1 on the sum would show
    torch.testing.assert_close(scale, 0.4 * (1.5 / u_t.abs().sum()).view(1))


@pytest.mark.parametrize("compiled", PATHS)
def test_each_drift_time_of_a_range_draws_its_own_moments(compiled, monkeypatch):
    """At the k-th time of the grid, the drawn weights of u = 1 have the table's median at k."""
    draw_path(compiled, monkeypatch)
    pcm = load_profile("pcm")
    s = sampler(pcm, [1.0, YEAR])
    median = s.tables.values[:, -1, s.tables.values.shape[-1] // 2]  # level z = 0
    assert median[1] < 0.8 * median[0]  # the times differ clearly
    for k in (0, 1):
        u_t, _ = s.device_weights(torch.ones(64, 64), k, frozen=False)
        assert float(u_t.median()) == pytest.approx(float(median[k]), rel=0.02)


def test_draws_come_from_the_chip_seed_not_the_global_generator():
    pcm = load_profile("pcm")
    w = torch.randn(8, 16, generator=torch.Generator().manual_seed(0))
    draws = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        draws.append(sampler(pcm, [YEAR]).device_weights(w, 0, frozen=False)[0])
    assert torch.equal(draws[0], draws[1])


def test_every_layer_draws_from_its_own_stream():
    model = make_tiny_bert()
    device = DeviceTraining(model, load_profile("pcm"), (YEAR, YEAR))
    w = torch.randn(32, 32, generator=torch.Generator().manual_seed(0))
    first, second = (f.sampler.device_weights(w, 0, frozen=False)[0] for f in device.forwards[:2])
    assert not torch.equal(first, second)
    device.detach()
    explicit = DeviceTraining(make_tiny_bert(), load_profile("pcm"), (YEAR, YEAR), seed=0)  # the default
    assert torch.equal(explicit.forwards[0].sampler.device_weights(w, 0, frozen=False)[0], first)
    explicit.detach()


def layer_and_twin(method: str | None, profile, drift, seed=0):
    """Two identical adapted tiny BERTs, one under DeviceTraining, and its first analog layer."""
    def build():
        model = make_tiny_bert()
        if method is not None:
            m = get_method(method)
            options = {"seed": 0} if method == "lora" else {"k": 4, "seed": 0}
            model = m.attach(model, m.make_config(options))
        with torch.no_grad():  # biases and adapters away from their zero initialisation
            for p in model.parameters():
                if p.requires_grad:
                    p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(3)))
        return no_dropout(model).train()

    model, twin = build(), build()
    device = DeviceTraining(model, profile, drift, seed=seed)
    name, layer = analog_layers(model)[0]
    twin_layer = dict(twin.named_modules())[name]
    return device, layer, twin_layer


@pytest.mark.parametrize("method", [None, "grasp"])
def test_a_layer_outputs_the_sampler_at_the_clock_time(method):
    """Training forward of a layer at clock k = its own sampler's output at k, with the layer's
    effective weights and bias (a plain trainable layer, and GRASP through its base product)."""
    pcm = load_profile("pcm")
    device, layer, twin = layer_and_twin(method, pcm, (1.0, YEAR))
    x = torch.randn(3, 5, 32, generator=torch.Generator().manual_seed(4))
    reference = DeviceTraining(make_tiny_bert(), pcm, (1.0, YEAR))  # fresh streams, same seed
    ref_sampler = reference.forwards[0].sampler
    w, b = effective_weight(twin)
    assert b is not None and float(b.detach().abs().sum()) > 0
    for k in (RANGE_POINTS - 1, 2):
        device.forwards[0].clock[0] = k
        with torch.no_grad():
            y = layer(x)
            expected = ref_sampler.output(x, w.detach(), b, k, frozen=False)
        torch.testing.assert_close(y, expected)
    device.detach()
    reference.detach()


@pytest.mark.parametrize("method", [None, "grasp"])
def test_a_layer_whose_weights_change_is_drawn_at_its_new_weights(method):
    """Trainable weights (a plain layer's, an adapter's) are mapped afresh at every forward:
    after tripling them, the layer's output is that of a twin whose weights were tripled first."""
    pcm = load_profile("pcm")
    x = torch.randn(4, 32, generator=torch.Generator().manual_seed(5))
    outputs = []
    for triple_first in (False, True):
        device, layer, _ = layer_and_twin(method, pcm, (YEAR, YEAR))
        params = [p for p in layer.parameters() if p.requires_grad and p.dim() > 0]
        if method == "grasp":
            params = [p for n, p in layer.named_parameters() if p.requires_grad and "base" not in n]
        with torch.no_grad():
            if triple_first:
                for p in params:
                    p.mul_(3.0)
            layer(x)
            if not triple_first:
                for p in params:
                    p.mul_(3.0)
            outputs.append(layer(x))
        device.detach()
    torch.testing.assert_close(outputs[0], outputs[1])


@pytest.mark.parametrize("compiled", PATHS)
def test_a_layer_unfrozen_after_frozen_forwards_is_mapped_afresh(compiled, monkeypatch):
    """Gradual unfreezing: the mapping scale and targets a frozen layer keeps serve its frozen
    forwards only; once it trains, its new weights are drawn as by a sampler that never froze."""
    draw_path(compiled, monkeypatch)
    pcm = load_profile("pcm")
    w = torch.randn(2, 8, 64, generator=torch.Generator().manual_seed(2))
    draws = []
    for frozen_first in (True, False):
        s = sampler(pcm, [YEAR])
        s.device_weights(w[0], 0, frozen=frozen_first)
        draws.append(s.device_weights(w[1], 0, frozen=False))
    torch.testing.assert_close(draws[0], draws[1])


@pytest.mark.parametrize("method", ["lora", "grasp"])
def test_ideal_device_keeps_adapter_forwards_and_lora_dropout(method, token_batch):
    """On the ideal profile a LoRA (dropout 0.1 kept) or GRASP model's training forward and
    gradients are plain training's for the same global seed: the chip replaces only the frozen
    base product, and LoRA's branch (with its dropout) is added to it as in plain training."""
    def adapted():
        model = make_tiny_bert()
        m = get_method(method)
        model = m.attach(model, m.make_config({"seed": 0} if method == "lora" else {"k": 4, "seed": 0}))
        with torch.no_grad():
            for p in model.parameters():
                if p.requires_grad:
                    p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(3)))
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Dropout) and "lora_dropout" not in name:
                module.p = 0.0
        return model.train()

    labels = torch.tensor([0, 1, 1])
    plain, device_model = adapted(), adapted()
    if method == "lora":
        assert any(isinstance(m, torch.nn.Dropout) and m.p > 0 for m in plain.modules())
    device = DeviceTraining(device_model, load_profile("ideal"), (1.0, 1.0))
    outputs = []
    for model in (plain, device_model):
        torch.manual_seed(7)  # LoRA's dropout masks
        outputs.append(model(**token_batch, labels=labels))
        outputs[-1].loss.backward()
    torch.testing.assert_close(outputs[1].logits, outputs[0].logits, rtol=1e-5, atol=1e-6)
    for (name, p), q in zip(plain.named_parameters(), device_model.parameters(), strict=True):
        if p.requires_grad:
            torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-6, msg=name)
    device.detach()


@pytest.mark.parametrize("method", ["grasp", "lora"])
def test_adapter_training_forward_carries_the_device_noise(method):
    """GRASP's and LoRA's base product is the chip's: their training output is not the digital one."""
    device, layer, twin = layer_and_twin(method, load_profile("pcm"), (YEAR, YEAR))
    x = torch.randn(4, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        noisy, digital = layer(x), twin(x)
    assert (noisy - digital).abs().mean() > 1e-2 * digital.abs().mean()
    device.detach()


def test_a_disabled_device_trains_digitally(token_batch):
    model, plain = no_dropout(make_tiny_bert()).train(), no_dropout(make_tiny_bert()).train()
    with DeviceTraining(model, load_profile("pcm"), (YEAR, YEAR)) as device, torch.no_grad():
        device.enabled = False
        torch.testing.assert_close(model(**token_batch).logits, plain(**token_batch).logits,
                                   rtol=0, atol=0)


def test_detach_restores_adapter_layers_and_is_idempotent():
    device, layer, _ = layer_and_twin("grasp", load_profile("pcm"), (YEAR, YEAR))
    assert "forward" in vars(layer.base)  # the inner product is patched
    device.detach()
    device.detach()
    assert "forward" not in vars(layer) and "forward" not in vars(layer.base)


def test_a_patch_failing_midway_restores_the_patched_layers(monkeypatch):
    model = make_tiny_bert()
    original = device_aware.DeviceAwareForward.patch
    calls = []

    def patch_then_fail(self):
        calls.append(self)
        if len(calls) == 3:
            raise RuntimeError("patch failed")
        original(self)

    monkeypatch.setattr(device_aware.DeviceAwareForward, "patch", patch_then_fail)
    with pytest.raises(RuntimeError, match="^patch failed$"):
        DeviceTraining(model, load_profile("pcm"), (YEAR, YEAR))
    assert not any("forward" in vars(m) for m in model.modules())
    assert not model._forward_pre_hooks


def test_model_without_blocks_message_is_exact():
    with pytest.raises(ImcSimError, match="^no Linear/Conv1D layer inside transformer blocks to train "
                                          "device-aware$"):
        DeviceTraining(torch.nn.Sequential(torch.nn.Linear(4, 4)), load_profile("pcm"), (1.0, 1.0))



def test_sampler_moves_its_tables_to_the_weights_device(monkeypatch):
    """Tables measured on the CPU follow the weights to a (fake) CUDA device: any op mixing the
    two devices raises under fake CUDA."""
    from fake_cuda import fake_cuda

    from imc_sim.crossbar import streams

    pcm = load_profile("pcm")
    real = QuantileTables.measure(pcm, [YEAR])
    # a CUDA generator cannot be made on a CPU build; fake tensors take a CPU one
    monkeypatch.setattr(streams, "generator", lambda device, seed: torch.Generator().manual_seed(seed))
    with fake_cuda(monkeypatch):
        tables = QuantileTables(real.times, torch.empty(real.values.shape), real.weight_level)
        s = DeviceSampler(pcm, tables, ChipStreams(0), "layer")
        u_t, scale = s.device_weights(torch.randn(8, 16, device="cuda:0"), 0, frozen=False)
        assert {u_t.device.type, scale.device.type, s.tables.values.device.type} == {"cuda"}


def test_calibration_draws_no_drift_time_and_leaves_the_device_on():
    """calibrate() runs digital forwards without touching the drift-time generator; afterwards the
    device is on and the k-th training forward reads the k-th time drawn from the seed."""
    from test_static_ranges import chip_profile, token_batches

    batches = token_batches()
    model = make_tiny_bert().train()
    with DeviceTraining(model, chip_profile(), (3600.0, 3.15e7), seed=5) as device:
        device.calibrate(batches)
        assert device.enabled is True
        seen = []
        for batch in batches:
            model(**batch)
            seen.append(device.forwards[0].clock[0])
    n = len(device.tables.times)
    times = torch.Generator().manual_seed(5)
    assert n > 1 and seen == [int(torch.randint(n, (1,), generator=times)) for _ in batches]


def test_the_samplers_read_noise_is_the_mean_of_a_weights_device_pairs():
    """pcm-chip reads the mean of two device pairs per weight: half a pair's per-read variance, as
    its deployed tiles (a factor of 2 in training's read noise otherwise)."""
    chip = load_profile("pcm-chip")
    tables = QuantileTables([1.0], torch.zeros(1, GRID, LEVELS), False)
    assert chip.devices_per_weight == 2
    assert DeviceSampler(chip, tables, ChipStreams(0), "layer").read == ReadNoise(c1=0.0175**2 / 2)
