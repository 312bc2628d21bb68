"""The fused crossbar forward agrees with aihwkit's own torch tile forward."""

import dataclasses

import pytest
import torch
from aihwkit.simulator.tiles.inference_torch import TorchInferenceTile

from imc_sim.crossbar import epilogue, int8_product
from imc_sim.crossbar.int8_product import Int8Weights, to_uint8_codes
from imc_sim.crossbar.periphery import Converters
from imc_sim.crossbar.rpu_config import build_rpu_config
from imc_sim.crossbar.tiles import CrossbarLinear
from imc_sim.devices import build_family
from imc_sim.devices.profile import load_profile


def crossbar(linear, profile):
    """``linear`` on tiles of ``profile``, unprogrammed (the tiles hold the mapped targets)."""
    return CrossbarLinear(linear, profile, build_family(profile))


def quiet_pcm(**periphery):
    """The pcm profile without output noise and per-read weight noise (deterministic forward),
    periphery overridden."""
    profile = load_profile("pcm")
    p = dataclasses.replace(profile.periphery, out_noise=0.0, **periphery)
    return dataclasses.replace(profile, periphery=p, read_noise={**profile.read_noise, "per_read": 0.0})


def aihwkit_layer(linear, profile):
    """The same layer through aihwkit's TorchInferenceTile objects (one per row tile)."""
    config = build_rpu_config(profile)
    rows = profile.periphery.tile_rows
    tiles = []
    for start in range(0, linear.in_features, rows):
        tile = TorchInferenceTile(linear.out_features, min(rows, linear.in_features - start),
                                  rpu_config=config)
        tile.set_weights(linear.weight.data[:, start : start + rows])
        tile.eval()
        tiles.append((start, tile))

    def forward(x):
        return sum(tile(x[:, s : s + tile.in_size]) for s, tile in tiles) + linear.bias
    return forward


@pytest.mark.parametrize("periphery", [
    {"adc_bits": "ideal", "dac_bits": 8},
    {"adc_bits": "ideal", "dac_bits": 6, "weight_scaling": "per-tile"},
    {"adc_bits": "ideal", "dac_bits": "ideal", "noise_management": "none", "weight_scaling": "none"},
])
def test_fused_forward_matches_aihwkit_without_adc(periphery):
    periphery = {k: (None if v == "ideal" else v) for k, v in periphery.items()}
    profile = quiet_pcm(**periphery)
    torch.manual_seed(0)
    linear = torch.nn.Linear(48, 24)
    layer = crossbar(linear, profile)
    x = torch.randn(64, 48)
    ours, theirs = layer(x), aihwkit_layer(linear, profile)(x)
    # int8 products hold each weight to 1 / 64,516 of its column's largest (4x that with 7-bit
    # limbs): with <= 48 codes of at most 127, the product differs by at most 48 * 127 / 64,516 ~
    # 0.1 code-weight units, i.e. ~1e-3 of one full-scale input-weight product; outputs here are ~1.
    tol = 2e-4 * (127 / int8_product.limbs().largest) ** 2 if layer.conv.int8 else 1e-5
    torch.testing.assert_close(ours, theirs, rtol=tol, atol=tol)


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled-epilogue", "torch-epilogue"])
def test_fused_forward_matches_aihwkit_with_adc_and_row_tiles(compiled, monkeypatch):
    from imc_sim.crossbar import epilogue

    monkeypatch.setattr(epilogue, "use_compiled", compiled and epilogue.AVAILABLE)
    profile = quiet_pcm(tile_rows=32, adc_bits=8)
    torch.manual_seed(0)
    linear = torch.nn.Linear(96, 40)
    layer = crossbar(linear, profile)
    assert layer.row_tiles == 3
    x = torch.randn(256, 96)
    ours, theirs = layer(x), aihwkit_layer(linear, profile)(x)
    # ADC rounding may flip by one level where float order differs: rare, and at most one step
    # per row tile (step = 2 out_bound / 254, times the input and weight scales).
    diff = (ours - theirs).abs()
    one_step = 2 * 10.0 / 254 * x.abs().amax() * linear.weight.abs().max()
    assert (diff > 1e-5).float().mean() < 0.01
    assert diff.max() <= 3 * one_step + 1e-5
    assert (ours - linear(x)).abs().mean() > 0  # the converters are really there


def test_output_noise_std_matches_the_profile():
    profile = dataclasses.replace(load_profile("pcm"), periphery=dataclasses.replace(
        load_profile("pcm").periphery, adc_bits=None, dac_bits=None, out_noise=0.04,
        weight_scaling="per-tile"), read_noise={**load_profile("pcm").read_noise, "per_read": 0.0})
    torch.manual_seed(0)
    linear = torch.nn.Linear(16, 8)
    layer = crossbar(linear, profile)
    x = torch.randn(1, 16).repeat(20000, 1)
    noise = layer(x) - linear(x)
    # noise std = out_noise * max|x| * max|W| (abs-max input scaling, per-tile weight scaling)
    expected = 0.04 * x.abs().max() * linear.weight.abs().max()
    assert noise.std(dim=0).mean().item() == pytest.approx(expected.item(), rel=0.05)
    assert noise.mean().abs().item() < 0.05 * expected.item()


@pytest.mark.skipif(int8_product.limbs() is None, reason="no exact int8 product here")
def test_int8_product_is_within_the_limb_bound():
    torch.manual_seed(0)
    weight = torch.randn(40, 96) * torch.rand(40, 1)  # columns of different scales
    codes = torch.randint(-127, 128, (300, 96)).float()
    got = Int8Weights.pack(weight, out_scale=0.5).product(to_uint8_codes(codes))
    exact = 0.5 * codes.double() @ weight.double().T
    # each weight is held to m / 4L^2 (m: its column's largest |w|; 64,516 for L = 127), so per
    # output |error| <= 0.5 * sum_k |c_k| * m / 4L^2, plus fp32 rounding of the result
    limbs = int8_product.limbs()
    m = weight.abs().amax(dim=1).double()
    bound = 0.5 * codes.abs().sum(1, keepdim=True).double() * m * limbs.two_limb_error + 1e-5 * exact.abs()
    assert ((got.double() - exact).abs() <= bound).all()
    # the low limb carries real information: the high limb alone errs ~2L times more
    L = limbs.largest
    one_limb = (weight * (L / m.float())[:, None]).round() * (m.float() / L)[:, None]
    coarse = 0.5 * codes.double() @ one_limb.double().T
    assert (got.double() - exact).abs().max() < (coarse - exact).abs().max() / 50


def activation_codes(rows: int, cols: int) -> torch.Tensor:
    """DAC codes like a transformer's under static ranges: rows of Gaussian codes of spreads from
    1 to 40, and an outlier at the bound in every tenth row; -127, 127, a zero row and a row of
    codes in {-1, 0, 1} included."""
    gen = torch.Generator().manual_seed(0)
    spread = torch.logspace(0, 1.6, rows)[torch.randperm(rows, generator=gen)][:, None]
    codes = (torch.randn(rows, cols, generator=gen) * spread).round().clamp(-127, 127)
    codes[::10, 0] = 127.0
    codes[1, :2] = torch.tensor([-127.0, 127.0])
    codes[2] = 0.0
    codes[3] = torch.randint(-1, 2, (cols,), generator=gen).float()  # a row of unit codes: s = 1 / 255
    return codes


@pytest.mark.skipif(not epilogue.AVAILABLE, reason="the compiled pass is not built")
def test_dithered_squares_are_the_same_in_the_compiled_pass_and_in_torch(monkeypatch):
    u8 = to_uint8_codes(activation_codes(300, 96))
    compiled = int8_product.dithered_squares(u8)
    monkeypatch.setattr(epilogue, "use_compiled", False)
    for ours, theirs in zip(compiled, int8_product.dithered_squares(u8), strict=True):
        assert torch.equal(ours, theirs)


def test_dithered_squares_round_each_square_to_a_neighbouring_level_without_bias():
    """q = floor(c^2 / s + d): within one level of c^2 / s, the row's largest near 255, zero codes
    0; over many codes E[q s] = c^2 (the dither makes the rounding unbiased)."""
    codes = activation_codes(2000, 256)
    q, step = int8_product.dithered_squares(to_uint8_codes(codes))
    assert torch.equal(step, codes.square().amax(1) / 255)
    level = codes.square() / torch.where(step > 0, step, 1.0)[:, None]
    assert ((q.float() - level).abs() < 1).all()
    assert (q[codes == 0] == 0).all() and (q.amax(1)[step > 0] >= 254).all()
    rounded = q.double() * step.double()[:, None]
    # squares below one level (62,000 here), rounded to 0 or 1 level: 0.988 of their sum (a random
    # dither's std: 0.007); rounding to the nearest level would give 0.75 of it
    small = (codes.abs() > 0) & (level < 1)
    assert rounded[small].sum() / codes.double().square()[small].sum() == pytest.approx(1.0, abs=0.03)
    assert rounded.sum() / codes.double().square().sum() == pytest.approx(1.0, abs=1e-3)


@pytest.mark.skipif(int8_product.limbs() is None, reason="no exact int8 product here")
@pytest.mark.parametrize("compiled", [True, False], ids=["compiled-squares", "torch-squares"])
def test_int8_read_variance_is_within_its_bound_and_unbiased(compiled, monkeypatch):
    """sum_j c_j^2 V_j on the int8 product, squares dithered per row (each within one step s of its
    row), V held to m / 254 per column (m: the column's largest variance), on codes with the
    spreads and outliers of transformer activations: |error| <= s sum_j V_j + sum_j c_j^2 m / 254,
    0.1 % at the median, no bias in the sum."""
    monkeypatch.setattr(epilogue, "use_compiled", compiled and epilogue.AVAILABLE)
    torch.manual_seed(0)
    var = torch.rand(40, 256) ** 2 * torch.rand(40, 1)  # columns of different scales, small values
    codes = activation_codes(600, 256)
    got, step = int8_product.Int8Variance.pack(var).variance(to_uint8_codes(codes))
    got = got.double() * step.double()[:, None]
    squares, var = codes.double().square(), var.double()
    exact = squares @ var.T
    one_limb = int8_product.limbs().one_limb_error  # 1 / 254 where the limbs reach 127
    bound = step.double()[:, None] * var.sum(1) + squares.sum(1, keepdim=True) * var.amax(1) * one_limb
    assert ((got - exact).abs() <= bound + 1e-6 * exact).all()
    assert torch.equal(got[2], exact[2])  # a row of zero codes: no read noise
    live = exact.sum(1) > 0
    assert ((got[live] - exact[live]) / exact[live]).abs().median() < 2e-3
    assert got.sum() / exact.sum() == pytest.approx(1.0, abs=1e-3)


def test_int8_is_used_only_where_codes_fit():
    pcm = load_profile("pcm").periphery
    assert Converters.from_periphery(pcm).int8 == (int8_product.limbs() is not None)
    wide = dataclasses.replace(pcm, dac_bits=10)
    assert not Converters.from_periphery(wide).int8
    ideal_dac = dataclasses.replace(pcm, dac_bits=None)
    assert not Converters.from_periphery(ideal_dac).int8


@pytest.mark.parametrize("dac_bits", [None, 8], ids=["exact-dac", "8-bit-dac-int8"])
def test_weight_read_noise_is_fresh_at_every_mvm_with_the_profile_std(dac_bits):
    """aihwkit's torch tiles refuse forward.w_noise; imc-sim draws it per MVM: every input row
    (one read) sees independent weight noise, so an output's std over reads of one input is
    w_noise * ||x|| * max|W| (per-tile scaling; exact converters, or an 8-bit DAC, whose codes
    run on the int8 product with the squared codes in steps of each row's own scale)."""
    ideal = load_profile("ideal")
    profile = dataclasses.replace(ideal, periphery=dataclasses.replace(
        ideal.periphery, w_noise=0.02, weight_scaling="per-tile", dac_bits=dac_bits))
    torch.manual_seed(0)
    linear = torch.nn.Linear(24, 6)
    layer = crossbar(linear, profile)
    assert layer.conv.int8 == (dac_bits is not None and int8_product.limbs() is not None)
    x = torch.randn(1, 24).repeat(20000, 1)
    quiet = crossbar(linear, dataclasses.replace(profile, periphery=dataclasses.replace(
        profile.periphery, w_noise=0.0)))  # the same converters without noise (the DAC's rounding)
    with torch.no_grad():
        noise = layer(x) - quiet(x)
    expected = 0.02 * x[0].norm() * linear.weight.abs().max()
    assert noise.std(dim=0).mean().item() == pytest.approx(expected.item(), rel=0.05)
    assert noise.mean(dim=0).abs().max().item() < 0.05 * expected.item()
    assert layer.dense is None  # read noise keeps the layer off the exact dense path


def test_fefet_read_variance_is_the_device_pair_read_noise():
    profile = load_profile("fefet")
    family = build_family(profile)
    relative = profile.read_noise["relative"]
    u = torch.tensor([-1.0, -0.3, 0.0, 0.5, 1.0])
    span = family.g_max - family.g_min
    g_pos = family.g_min + u.clamp(min=0) * span
    g_neg = family.g_min + (-u).clamp(min=0) * span
    reads, gen = 200000, torch.Generator().manual_seed(0)
    noisy = [(g + relative * g * torch.randn(reads, 5, generator=gen)) for g in (g_pos, g_neg)]
    measured = ((noisy[0] - noisy[1]) / span).var(dim=0)
    torch.testing.assert_close(family.read_variance(u), measured, rtol=0.03, atol=0.0)


@pytest.mark.parametrize("int8", [True, False])
def test_a_short_last_row_tile_multiplies_only_its_inputs(int8, monkeypatch):
    """40 inputs on 32-row tiles: the last row tile has 8 inputs and multiplies only those. Its
    24 padding rows see zero codes, so the outputs (product, per-read and output noise from the
    same stream, ADC) are those of the full padded tile, bit for bit."""
    from imc_sim.crossbar.periphery import TileStack

    profile = load_profile("pcm")
    profile = dataclasses.replace(profile, periphery=dataclasses.replace(profile.periphery, tile_rows=32))
    torch.manual_seed(0)
    linear, x = torch.nn.Linear(40, 12), torch.randn(64, 40)
    short, padded = crossbar(linear, profile), crossbar(linear, profile)
    for layer in (short, padded):
        layer.conv = dataclasses.replace(layer.conv, int8=int8 and int8_product.limbs() is not None)
    padded._stack = TileStack.build(padded.weights, padded.scales, padded.conv, padded.read_law)
    assert short.stack.used == (32, 8) and padded.stack.used is None
    if short.stack.packed is not None:
        assert short.stack.inputs(torch.zeros(3, 32), 1).shape == (3, 8)
    with torch.no_grad():
        ours, full = short(x), padded(x)
    assert torch.equal(ours, full)
    assert (ours - linear(x)).abs().mean() > 0  # noise and converters are there
