"""IR drop along the tiles' wires (aihwkit's model, ``imc_sim.crossbar.ir_drop``).

aihwkit 1.1.0 computes IR drop only in its compiled C++ tile (rpucuda's ``applyIrDrop``) and its
torch tiles refuse it. The reference here is aihwkit's own ``TorchInferenceTile`` (mapping, noise
management, DAC, ADC, output scales) with rpucuda's IR-drop pass written out below, in float64 and
in input units, on the product where rpucuda applies it (after the product, before the output
noise and ADC), with the ``ir_drop`` and ``ir_drop_g_ratio`` that ``build_rpu_config`` set.
"""

import copy
import dataclasses
from itertools import pairwise

import pytest
import torch
import yaml
from aihwkit.exceptions import ConfigError
from aihwkit.simulator.tiles.analog_mvm import AnalogMVM
from aihwkit.simulator.tiles.inference_torch import TorchInferenceTile
from conftest import make_tiny_bert
from test_fake_cuda_deploy import FakeCudaMethods, fake_cuda  # noqa: F401 - the fixture

from imc_sim.crossbar import epilogue, int8_product
from imc_sim.crossbar.int8_product import to_uint8_codes
from imc_sim.crossbar.ir_drop import IrDrop, IrDropTiles
from imc_sim.crossbar.mapping import deploy_model
from imc_sim.crossbar.rpu_config import build_rpu_config
from imc_sim.crossbar.streams import ChipStreams
from imc_sim.crossbar.tiles import CrossbarLinear
from imc_sim.deploy.chip import Chip
from imc_sim.devices import build_family
from imc_sim.devices.profile import load_profile, profile_from_dict, shipped_profiles
from imc_sim.errors import ImcSimError


def with_periphery(profile, conductance=None, devices=None, **periphery):
    """``profile`` with periphery fields (``"ideal"`` converters as None), conductance fields and
    devices per weight replaced."""
    periphery = {k: (None if v == "ideal" else v) for k, v in periphery.items()}
    return dataclasses.replace(
        profile, periphery=dataclasses.replace(profile.periphery, **periphery),
        conductance={**profile.conductance, **(conductance or {})},
        devices_per_weight=devices or profile.devices_per_weight)


def quiet_pcm(**periphery):
    """pcm without output and per-read noise (a deterministic forward), periphery replaced."""
    profile = load_profile("pcm")
    profile = dataclasses.replace(profile, read_noise={**profile.read_noise, "per_read": 0.0})
    return with_periphery(profile, out_noise=0.0, **periphery)


def crossbar(linear, profile):
    return CrossbarLinear(linear, profile, build_family(profile))


def relative_error(linear, profile, x):
    """||y_ir - y|| / ||y|| of the unprogrammed layer (targets), IR drop on against off."""
    on = crossbar(linear, profile)(x)
    off = crossbar(linear, with_periphery(profile, ir_drop=0.0))(x)
    return ((on - off).norm() / off.norm()).item()


def rpucuda_ir_drop(ir_drop: float, g_ratio: float):
    """aihwkit's product with rpucuda's IR-drop pass, per input vector x and output i (float64):
    a_i = n / g_ratio sum_j |w_ij| |x_j|, y_i -= ir_drop a_i (a_i (0.05 a_i - 0.2) + 0.5)
    sum_j w_ij x_j (1 - (1 - j / n)^2)."""
    def matmul(cls, weight, input_, trans=False):
        assert not trans and weight.dim() == 2
        w, x = weight.double(), input_.double()
        n = w.shape[1]
        a = n / g_ratio * (x.abs() @ w.abs().T)
        c = a * (a * (0.05 * a - 0.2) + 0.5)
        p = 1.0 - torch.arange(n, dtype=torch.float64) / n
        return (x @ w.T - ir_drop * c * ((x * (1.0 - p * p)) @ w.T)).to(input_.dtype)
    return classmethod(matmul)


def aihwkit_layer(linear, profile, rows, monkeypatch):
    """``linear`` on aihwkit TorchInferenceTiles of ``rows`` inputs (the last one zero-padded, as
    imc-sim's grid pads it), with rpucuda's IR drop on their products."""
    config = build_rpu_config(profile)
    monkeypatch.setattr(AnalogMVM, "_matmul", rpucuda_ir_drop(config.forward.ir_drop,
                                                              config.forward.ir_drop_g_ratio))
    config = copy.deepcopy(config)
    config.forward.ir_drop = 0.0  # the torch tile refuses it; the patched product applies it
    padded = -(-linear.in_features // rows) * rows
    weight = torch.nn.functional.pad(linear.weight.data, (0, padded - linear.in_features))
    tiles = []
    for start in range(0, padded, rows):
        tile = TorchInferenceTile(linear.out_features, rows, rpu_config=config)
        tile.set_weights(weight[:, start : start + rows])
        tiles.append(tile.eval())

    def forward(x):
        x = torch.nn.functional.pad(x, (0, padded - linear.in_features))
        return sum(t(x[:, i * rows : (i + 1) * rows]) for i, t in enumerate(tiles)) + linear.bias
    return forward


def test_torch_tile_refuses_ir_drop_and_the_config_carries_it():
    """aihwkit 1.1.0's quirk (its torch tile has no IR drop) and the fields imc-sim sets."""
    profile = with_periphery(load_profile("pcm"), ir_drop=0.5, wire_resistance=0.7, devices=2)
    config = build_rpu_config(profile)
    assert config.forward.ir_drop == 0.5
    # 1 / (R g_full): 0.7 ohm, two device pairs of 25 uS each
    assert config.forward.ir_drop_g_ratio == pytest.approx(1 / (0.7 * 2 * 25e-6))
    with pytest.raises(ConfigError, match="IR drop"):
        TorchInferenceTile(4, 4, rpu_config=config)
    assert build_rpu_config(load_profile("pcm")).forward.ir_drop == 0.0


@pytest.mark.parametrize("case", [
    {"tile_rows": 64, "adc_bits": "ideal", "in": 64, "compiled": True},
    {"tile_rows": 64, "adc_bits": "ideal", "dac_bits": 6, "weight_scaling": "per-tile", "in": 64,
     "compiled": True},
    {"tile_rows": 64, "adc_bits": "ideal", "dac_bits": 10, "in": 64, "compiled": True},
    {"tile_rows": 32, "adc_bits": 8, "in": 80, "compiled": True},
    {"tile_rows": 32, "adc_bits": 8, "in": 80, "compiled": False},
], ids=["dac8", "dac6-per-tile", "dac10-fp32", "adc8-ragged-compiled", "adc8-ragged-torch"])
def test_layer_with_ir_drop_matches_aihwkit_tile_with_rpucuda_ir_drop(case, monkeypatch):
    case = dict(case)
    n_in, compiled = case.pop("in"), case.pop("compiled")
    monkeypatch.setattr(epilogue, "use_compiled", compiled and epilogue.AVAILABLE)
    # 10 ohm per cell and 50 uS: a drop of a few percent on these small tiles
    profile = with_periphery(quiet_pcm(ir_drop=1.0, wire_resistance=10.0, **case),
                             conductance={"g_max": 50.0})
    torch.manual_seed(0)
    linear = torch.nn.Linear(n_in, 24)
    layer = crossbar(linear, profile)
    x = torch.randn(128, n_in)
    ours = layer(x)
    theirs = aihwkit_layer(linear, profile, layer.grid.rows, monkeypatch)(x)
    off = crossbar(linear, with_periphery(profile, ir_drop=0.0))(x)
    assert (ours - off).abs().mean() > 0.01 * off.abs().mean()  # the drop is really there
    diff = (ours - theirs).abs()
    if profile.periphery.adc_bits is None:
        # the int8 product holds each weight to 1 / 64,516 of its column's largest (<= 64 codes
        # of <= 127: ~1e-3 of one full-scale product) and the drop is fp32 against float64; the
        # int8 drop's two products take the high limb alone (1 / 254 of a column's largest): the
        # drop to within 2 % of the layer's largest (aihwkit's drop: off - theirs; 0.4 % measured)
        tol = 2e-4 * (127 / int8_product.limbs().largest) ** 2 if layer.conv.int8 else 1e-5
        slack = 0.02 * (off - theirs).abs().amax() if layer.conv.int8 else 0.0
        assert (diff <= tol + tol * theirs.abs() + slack).all()
    else:
        # the ADC may round one level apart where float order or the drop's one-limb weights
        # differ (rare: a share that grows as the limbs' 1 / 2L), at most one step per row tile:
        # 2 out_bound / 254 times the input and weight scales
        one_step = 2 * 10.0 / 254 * x.abs().amax() * linear.weight.abs().max()
        flips = 0.01 * (127 / int8_product.limbs().largest if layer.conv.int8 else 1.0)
        assert (diff > 1e-5).float().mean() < flips
        assert diff.max() <= 3 * one_step + 1e-5


def test_zero_ir_drop_changes_nothing_bitwise():
    """A scale of 0 or a wire without resistance: the noisy, drifted, compensated pcm layer gives
    the very same numbers as without the fields (same chip seed)."""
    torch.manual_seed(0)
    linear = torch.nn.Linear(96, 40)
    x = torch.randn(64, 96)
    base = load_profile("pcm")

    def output(profile):
        layer = crossbar(linear, profile)
        layer.program(ChipStreams(3), "layer")
        layer.drift(86400.0, ChipStreams(3), "layer")
        return layer(x)

    reference = output(base)
    assert torch.equal(output(with_periphery(base, ir_drop=0.0)), reference)
    assert torch.equal(output(with_periphery(base, ir_drop=1.0, wire_resistance=0.0)), reference)
    assert not torch.equal(output(with_periphery(base, ir_drop=1.0)), reference)


def test_ir_drop_grows_with_tile_size_and_conductance():
    torch.manual_seed(0)
    linear = torch.nn.Linear(256, 32)
    x = torch.randn(64, 256)
    ideal = quiet_pcm(dac_bits="ideal", adc_bits="ideal", ir_drop=1.0)
    by_rows = [relative_error(linear, with_periphery(ideal, tile_rows=n), x) for n in (32, 64, 128, 256)]
    assert all(a < b for a, b in pairwise(by_rows)), by_rows
    by_g = [relative_error(linear, with_periphery(ideal, tile_rows=128, conductance={"g_max": g}), x)
            for g in (5.0, 25.0, 100.0)]
    assert all(a < b for a, b in pairwise(by_g)), by_g
    # the current is that of the full-scale conductance: two pairs of 25 uS draw what one of 50 does
    two_pairs = crossbar(linear, with_periphery(ideal, tile_rows=128, devices=2))(x)
    one_pair = crossbar(linear, with_periphery(ideal, tile_rows=128, conductance={"g_max": 50.0}))(x)
    torch.testing.assert_close(two_pairs, one_pair, rtol=0, atol=0)


def test_compensation_read_out_drop_is_the_forward_drop_of_one_hot_inputs():
    torch.manual_seed(0)
    model = IrDrop(scale=0.8, per_code=2e-3, rows=48)
    weights = torch.rand(1, 20, 48) * 2 - 1
    codes = 100.0 * torch.eye(48)
    position = model.position(weights.device)
    forward = IrDropTiles.build(model, weights, used=None).terms(codes, 0, 1.0).drop()
    read_out = model.one_hot_drop(codes @ weights[0].T, position)
    torch.testing.assert_close(read_out, forward)
    assert position[0] == 0 and 0.99 < position[-1] < 1


@pytest.mark.skipif(int8_product.limbs() is None, reason="no exact int8 product here")
def test_int8_drop_matches_the_fp32_drop():
    torch.manual_seed(0)
    model = IrDrop(scale=1.0, per_code=1e-3, rows=64)
    weights = torch.rand(2, 30, 64) * 2 - 1
    codes = torch.randint(-127, 128, (50, 64)).float()
    exact = IrDropTiles.build(model, weights, used=None).terms(codes, 1, 1.0).drop()
    packed = IrDropTiles.build(model, weights, used=(64, 64))
    assert all(p.lo is None for p in packed.weighted + packed.magnitudes)  # one product each
    int8 = packed.terms(to_uint8_codes(codes), 1, 1.0).drop()
    # the high limb alone holds each weight to 1 / 254 of its column's largest (<= 1): the
    # position-weighted product errs by <= sum_j |c_j| / 254 (~13 of its ~2,000 here), times the
    # factor s c(a) of each output; the current (~sum_j |c_j| / 2) errs by as much, which moves the
    # factor (about linear in a) by <= 2 / 254 of itself
    factor = model.factor(codes.abs() @ weights[1].abs().T)
    one_limb = int8_product.limbs().one_limb_error  # 1 / 254 where the limbs reach 127
    bound = factor * codes.abs().sum(1, keepdim=True) * one_limb + 2 * one_limb * exact.abs()
    assert ((int8 - exact).abs() <= bound).all()
    assert exact.abs().mean() > 1  # drops of several code-weight units: the bound is tight


@pytest.mark.skipif(int8_product.limbs() is None, reason="no exact int8 product here")
def test_a_remainder_tile_drops_only_over_its_inputs_and_as_if_padded():
    """A last row tile of 40 inputs on 64-row tiles multiplies only its 40 inputs, and its drop is
    the padded tile's (positions of the full tile, zero codes and weights beyond), in int8 and in
    fp32."""
    torch.manual_seed(0)
    model = IrDrop(scale=1.0, per_code=1e-3, rows=64)
    weights = torch.rand(2, 30, 64) * 2 - 1
    weights[1, :, 40:] = 0
    codes = torch.randint(-127, 128, (50, 64)).float()
    codes[:, 40:] = 0
    cut = IrDropTiles.build(model, weights, used=(64, 40))
    padded = IrDropTiles.build(model, weights, used=(64, 64)).terms(to_uint8_codes(codes), 1, 1.0).drop()
    int8 = cut.terms(to_uint8_codes(codes[:, :40]), 1, 1.0).drop()
    torch.testing.assert_close(int8, padded, rtol=1e-6, atol=1e-4)
    full = IrDropTiles.build(model, weights, used=None)
    torch.testing.assert_close(full.terms(codes[:, :40], 1, 1.0).drop(), full.terms(codes, 1, 1.0).drop())
    with pytest.raises(RuntimeError):  # the cut tile holds 40 inputs, not the padded 64
        cut.terms(to_uint8_codes(codes), 1, 1.0)


def raw_profile(name: str) -> dict:
    return yaml.safe_load(shipped_profiles()[name].read_text())


@pytest.mark.parametrize("name, periphery, message", [
    ("pcm", {"ir_drop": -0.5}, "periphery.ir_drop = -0.5 is out of range"),
    ("pcm", {"ir_drop": 1.0, "wire_resistance": -1}, "periphery.wire_resistance = -1 is out of range"),
    ("gaussian", {"ir_drop": 1.0}, "periphery.ir_drop needs a tile size"),
    ("gaussian", {"ir_drop": 1.0, "tile_rows": 256}, "model 'gaussian' has no device conductance"),
])
def test_bad_ir_drop_is_one_line(name, periphery, message):
    raw = raw_profile(name)
    raw["periphery"].update(periphery)
    with pytest.raises(ImcSimError, match=message) as info:
        profile_from_dict(raw, "x.yaml")
    assert "\n" not in str(info.value)


def test_ir_drop_without_tile_rows_in_a_pcm_profile_is_refused_and_with_it_loads():
    raw = raw_profile("pcm")
    raw["periphery"]["ir_drop"] = 1.0
    assert profile_from_dict(raw).periphery.ir_drop_on
    del raw["periphery"]["tile_rows"]
    with pytest.raises(ImcSimError, match=r"needs a tile size \(.*\): set periphery.tile_rows$"):
        profile_from_dict(raw)


def test_ir_drop_programs_drifts_and_runs_on_fake_cuda(fake_cuda):  # noqa: F811 - the fixture
    mode, to_cuda = fake_cuda
    profile = with_periphery(load_profile("pcm"), ir_drop=1.0)
    model = make_tiny_bert()
    deployment = deploy_model(model, profile)
    with mode, FakeCudaMethods():
        model._apply(to_cuda)
        Chip(deployment, 1).drift_to(86400.0)
        ids = torch.ones(3, 7, dtype=torch.long, device="cuda")
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
        assert logits.device.type == "cuda" and logits.shape == (3, 2)
        layer = next(iter(deployment.layers.values()))
        assert layer.stack.ir_drop is not None
