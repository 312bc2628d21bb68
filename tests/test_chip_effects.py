"""Chip effects of a profile: per-read weight noise, faults, devices per weight, the tile split."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml

from imc_sim.crossbar import faults
from imc_sim.crossbar.grid import TileGrid
from imc_sim.crossbar.streams import ChipStreams
from imc_sim.crossbar.tiles import CrossbarLinear
from imc_sim.devices import build_family
from imc_sim.devices.profile import PROFILE_DIR, DeviceProfile, load_profile, profile_from_dict
from imc_sim.errors import ImcSimError


def pcm(**sections) -> DeviceProfile:
    """The shipped pcm profile on 16 x 16 tiles, with sections merged in (``None`` drops one)."""
    raw = yaml.safe_load(Path(PROFILE_DIR, "pcm.yaml").read_text())
    raw["periphery"] = {**raw["periphery"], "tile_rows": 16, "tile_cols": 16}
    for key, value in sections.items():
        if value is None:
            raw.pop(key, None)
        elif isinstance(value, dict):
            raw[key] = {**raw.get(key, {}), **value}
        else:
            raw[key] = value
    return profile_from_dict(raw, "test.yaml")


IDEAL_PERIPHERY = {"dac_bits": "ideal", "adc_bits": "ideal", "out_noise": 0.0, "noise_management": "none"}


def layer(profile: DeviceProfile, n_in: int = 40, n_out: int = 24, seed: int = 0) -> CrossbarLinear:
    gen = torch.Generator().manual_seed(seed)
    linear = torch.nn.Linear(n_in, n_out)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(n_out, n_in, generator=gen))
    return CrossbarLinear(linear, profile, build_family(profile))


def programmed(profile: DeviceProfile, seed: int = 0, **shape) -> CrossbarLinear:
    out = layer(profile, **shape)
    out.program(ChipStreams(seed), "layer")
    return out


# --- per-read weight noise -------------------------------------------------------------------

def test_pcm_per_read_noise_is_aihwkits_pcm_read_law():
    """Output std over reads = m * per_read * sqrt(sum_j |u_j| x_j^2) (rpucuda's PCMRead)."""
    profile = pcm(periphery=IDEAL_PERIPHERY, compensation="none", read_noise={"per_read": 0.05})
    tile = programmed(profile, n_in=16, n_out=4)
    x = torch.linspace(-1, 1, 16)
    with torch.no_grad():
        y = tile(x.expand(4000, 16))
    u, m = tile.weights[0], tile.scales[0]
    expected = m * 0.05 * (u.abs() * x.square()).sum(-1).sqrt()
    torch.testing.assert_close(y.std(0), expected, rtol=0.08, atol=0.0)


def test_per_read_noise_differs_between_reads_not_in_programming():
    noisy, quiet = pcm(), pcm(read_noise={"per_read": 0.0})
    a, b = programmed(noisy), programmed(quiet)
    torch.testing.assert_close(a.programmed, b.programmed, rtol=0, atol=0)  # same seed, same chip
    x = torch.randn(3, 40, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert not torch.equal(a(x), a(x))
        assert b.read_variance() is None and a.read_variance() is not None


def test_reram_per_read_noise_is_constant_and_off_by_default():
    raw = yaml.safe_load(Path(PROFILE_DIR, "reram.yaml").read_text())
    assert build_family(profile_from_dict(raw)).read_variance(torch.ones(3)) is None
    raw["read_noise"] = {"per_read": 0.01}
    var = build_family(profile_from_dict(raw)).read_variance(torch.tensor([0.0, 0.5, -1.0]))
    torch.testing.assert_close(var, torch.full((3,), 1e-4))


# --- faults ---------------------------------------------------------------------------------

def test_zero_fault_fractions_change_nothing():
    base = programmed(pcm())
    zero = programmed(pcm(faults={"stuck_low": 0.0, "stuck_high": 0.0, "dead_columns": 0.0}))
    assert torch.equal(base.programmed, zero.programmed) and zero.stuck is None
    base.drift(3600.0, ChipStreams(0), "layer")
    zero.drift(3600.0, ChipStreams(0), "layer")
    assert torch.equal(base.weights, zero.weights) and torch.equal(base.scales, zero.scales)


@pytest.mark.parametrize("field", ["stuck_low", "stuck_high", "dead_columns"])
def test_fraction_one_pins_every_weight(field):
    tile = programmed(pcm(faults={field: 1.0}))
    assert torch.count_nonzero(tile.programmed) == 0  # both devices at g_min or g_max, or dead
    tile.drift(86400.0, ChipStreams(0), "layer")
    assert torch.count_nonzero(tile.weights) == 0  # stuck devices do not drift
    if field != "dead_columns":
        assert bool((tile.stuck == (faults.LOW if field == "stuck_low" else faults.HIGH)).all())


def test_drawn_fault_fractions_match_in_expectation():
    tile = programmed(pcm(faults={"stuck_low": 0.2, "stuck_high": 0.1, "dead_columns": 0.25}),
                      n_in=128, n_out=128)
    assert abs((tile.stuck == faults.LOW).float().mean().item() - 0.2) < 0.01
    assert abs((tile.stuck == faults.HIGH).float().mean().item() - 0.1) < 0.01
    dead = 1 - tile.live.amax(-1).float().mean().item()  # 1024 tile columns
    assert abs(dead - 0.25) < 0.05
    assert tile.live.dtype == torch.bool and torch.count_nonzero(tile.programmed * ~tile.live) == 0


@pytest.mark.parametrize("faulty, message", [
    ({"stuck_low": 1.5}, r"field faults.stuck_low = 1.5 is out of range"),
    ({"stuck_low": 0.6, "stuck_high": 0.6}, r"stuck_low \+ stuck_high = 1.2 is above 1"),
    ({"stuck": 0.1}, r"faults.stuck is not a faults field"),
])
def test_bad_fault_fractions_are_one_line_errors(faulty, message):
    with pytest.raises(ImcSimError, match=message) as info:
        pcm(faults=faulty)
    assert "\n" not in str(info.value)


# --- devices per weight ---------------------------------------------------------------------

def test_n_devices_per_weight_shrink_programming_spread_by_sqrt_n():
    spreads = {}
    for n in (1, 4):
        tile = programmed(pcm(conductance={"devices_per_weight": n}, read_noise={"scale": 0.0}),
                          n_in=64, n_out=64)
        spreads[n] = (tile.programmed - tile.target).std().item()
    assert 1.8 < spreads[1] / spreads[4] < 2.2


def test_devices_per_weight_is_validated():
    with pytest.raises(ImcSimError, match="conductance.devices_per_weight = 0 is out of range"):
        pcm(conductance={"devices_per_weight": 0})


# --- tile split -----------------------------------------------------------------------------

@pytest.mark.parametrize("split, rows, row_tiles", [("fixed", 512, 2), ("even", 384, 2)])
def test_tile_split_of_768_inputs(split, rows, row_tiles):
    grid = TileGrid.of(768, 700, 512, 512, split)
    assert (grid.rows, grid.row_tiles) == (rows, row_tiles)
    assert (grid.cols, grid.col_tiles) == ((512, 2) if split == "fixed" else (350, 2))


@pytest.mark.parametrize("split", ["fixed", "even"])
def test_both_splits_compute_the_layer(split):
    """40 x 24 on 16 x 16 tiles (even: 14 x 12) without noise is the digital layer."""
    profile = profile_from_dict({"name": "i", "description": "d", "source": "s", "model": "ideal",
                                 "periphery": {**IDEAL_PERIPHERY, "tile_rows": 16, "tile_cols": 16,
                                               "tile_split": split}})
    tile = programmed(profile)
    assert tile.grid.rows == (16 if split == "fixed" else 14)
    x = torch.randn(5, 40, generator=torch.Generator().manual_seed(2))
    gen = torch.Generator().manual_seed(0)
    weight = torch.randn(24, 40, generator=gen)
    with torch.no_grad():
        torch.testing.assert_close(tile(x), x @ weight.T + tile.bias, rtol=1e-5, atol=1e-5)


# --- static input ranges --------------------------------------------------------------------

STATIC = {**IDEAL_PERIPHERY, "tile_rows": 16, "tile_cols": 16, "input_range": "static",
          "input_percentile": 90.0}


def ideal(**periphery) -> DeviceProfile:
    return profile_from_dict({"name": "i", "description": "d", "source": "s", "model": "ideal",
                              "periphery": periphery})


def test_static_range_is_the_mean_batch_percentile_and_the_same_for_the_same_data():
    tile = programmed(ideal(**STATIC))  # 40 inputs: row tiles of 16, 16, 8
    batches = [torch.randn(50, 40, generator=torch.Generator().manual_seed(k)) for k in range(3)]
    ranges = []
    for _ in range(2):
        tile.begin_calibration()
        for x in batches:
            tile(x)
        tile.end_calibration()
        ranges.append(tile.input_ranges.clone())
    assert torch.equal(ranges[0], ranges[1]) and ranges[0].shape == (3,)
    expected = torch.stack([torch.stack([x[:, s : s + 16].abs().flatten().kthvalue(
        math.ceil(0.9 * x[:, s : s + 16].numel())).values for s in (0, 16, 32)]) for x in batches])
    torch.testing.assert_close(ranges[0], expected.mean(0))


def test_an_input_beyond_the_static_range_clips():
    tile = programmed(ideal(**STATIC))
    tile.input_ranges = torch.tensor([1.0, 2.0, 0.5])
    x = torch.full((1, 40), 0.25)
    x[0, 3], x[0, 20], x[0, 35] = 5.0, -7.0, 0.75  # beyond the ranges 1, 2, 0.5 of their row tiles
    clipped = x.clone()
    clipped[0, 3], clipped[0, 20], clipped[0, 35] = 1.0, -2.0, 0.5
    weight = torch.randn(24, 40, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(tile(x), clipped @ weight.T + tile.bias, rtol=1e-5, atol=1e-5)


def test_a_static_range_without_calibration_data_is_a_one_line_error(token_batch):
    from conftest import make_tiny_bert

    from imc_sim.crossbar.mapping import deploy_model

    tile = programmed(ideal(**STATIC))
    with pytest.raises(ImcSimError, match="input_range = static needs calibration data"):
        tile(torch.ones(2, 40))
    deployment = deploy_model(make_tiny_bert(), pcm(periphery={"input_range": "static",
                                                               "noise_management": "none"}))
    with pytest.raises(ImcSimError, match="needs calibration data") as info:
        deployment.calibrate([])
    assert "\n" not in str(info.value)
    deployment.calibrate([token_batch])
    with torch.no_grad():
        assert torch.isfinite(deployment.model(**token_batch).logits).all()
    assert all(layer.input_ranges is not None for layer in deployment.layers.values())


def test_static_ranges_need_noise_management_none():
    with pytest.raises(ImcSimError) as info:
        pcm(periphery={"input_range": "static"})
    assert str(info.value) == ("profile test.yaml: field periphery.input_range = static replaces noise "
                               "management: set periphery.noise_management to none")


# --- the pcm-chip profile -------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:Using a non-tuple sequence")  # inside aihwkit's hermes.py
def test_pcm_chip_programming_and_drift_follow_aihwkits_hermes_fit():
    from aihwkit.inference.noise.hermes import HermesNoiseModel

    family = build_family(load_profile("pcm-chip"))
    hermes = HermesNoiseModel(num_devices=1)
    torch.manual_seed(0)
    for x in (0.05, 0.2, 0.5, 0.9):
        g = torch.full((40_000,), x * 10.35)
        z = torch.randn(40_000, generator=torch.Generator().manual_seed(2))
        prog = family.program(g, z) - g
        assert prog.std().item() == pytest.approx(
            (hermes.apply_programming_noise_to_conductance(g) - g).std().item(), rel=0.03)
        ours = family.drift_coefficients(g, torch.randn(40_000, generator=torch.Generator().manual_seed(1)))
        theirs = hermes.generate_drift_coefficients(g)
        assert ours.mean().item() == pytest.approx(theirs.mean().item(), rel=0.04)
        assert ours.std().item() == pytest.approx(theirs.std().item(), rel=0.06)


def test_pcm_chip_deploys_with_calibrated_static_ranges(token_batch):
    from conftest import make_tiny_bert

    from imc_sim.crossbar.mapping import deploy_model
    from imc_sim.deploy.chip import Chip

    profile = load_profile("pcm-chip")
    assert profile.devices_per_weight == 2 and profile.periphery.input_range == "static"
    deployment = deploy_model(make_tiny_bert(), profile)
    deployment.calibrate([token_batch])
    Chip(deployment, 0).drift_to(86400.0)
    with torch.no_grad():
        assert torch.isfinite(deployment.model(**token_batch).logits).all()


def test_all_zero_input_vectors_do_not_count_in_a_range():
    from imc_sim.crossbar.input_ranges import batch_range

    x = torch.randn(30, 40, generator=torch.Generator().manual_seed(3))
    padded = torch.cat([x, torch.zeros(20, 40)])
    padded[:5, 16:32] = 0.0  # five vectors all zero on the second row tile only
    got = batch_range(padded, 16, 90.0)
    torch.testing.assert_close(got[0], batch_range(x, 16, 90.0)[0])
    torch.testing.assert_close(got[1], batch_range(x[5:], 16, 90.0)[1])
    assert batch_range(torch.zeros(4, 40), 16, 90.0).eq(0).all()  # nothing seen: 0
