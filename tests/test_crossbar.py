"""The batched crossbar layer against aihwkit's own TorchInferenceTile, in distribution over chips.

The reference cuts the same weight into the same tiles, one aihwkit ``TorchInferenceTile`` each,
configured by ``build_rpu_config`` (aihwkit's mapping, pair converter, programming, drift and
drift compensation with its own noise model); each side programs many chips, drifts them and
reads one fixed input. Per output, the means over chips agree within Monte-Carlo error and the
stds within 25 %. The layer is ragged (40 x 24 on 16 x 16 tiles: 3 x 2 tiles, the last row and
column of tiles partly empty) and its output columns span three decades of scale.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from aihwkit.simulator.tiles.inference_torch import TorchInferenceTile

from imc_sim.crossbar.rpu_config import build_rpu_config
from imc_sim.crossbar.streams import ChipStreams
from imc_sim.crossbar.tiles import CrossbarLinear
from imc_sim.devices import build_family
from imc_sim.devices.profile import DeviceProfile, load_profile

CHIPS = 150
DAY = 86400.0


def small_tiles(profile: DeviceProfile, **periphery) -> DeviceProfile:
    """``profile`` on 16 x 16 tiles (periphery fields overridden)."""
    return dataclasses.replace(profile, periphery=dataclasses.replace(
        profile.periphery, tile_rows=16, tile_cols=16, **periphery))


def ragged_linear() -> torch.nn.Linear:
    """40 inputs x 24 outputs whose output columns span three decades of scale."""
    gen = torch.Generator().manual_seed(0)
    linear = torch.nn.Linear(40, 24)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(24, 40, generator=gen)
                            * 10 ** torch.empty(24, 1).uniform_(-2, 1, generator=gen))
        linear.bias.copy_(torch.randn(24, generator=gen) * 0.1)
    return linear


def aihwkit_chips(linear: torch.nn.Linear, profile: DeviceProfile, t: float, x: torch.Tensor,
                  chips: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``chips`` chips of aihwkit tiles (same cut), each programmed, drifted to ``t`` and read on
    ``x`` (torch's global generator): outputs [chips, out] and compensation gains
    [chips, row_tiles, out]."""
    config, p = build_rpu_config(profile), profile.periphery
    w = linear.weight.detach()
    tiles = []
    for r0 in range(0, w.shape[1], p.tile_rows):
        for c0 in range(0, w.shape[0], p.tile_cols):
            block = w[c0 : c0 + p.tile_cols, r0 : r0 + p.tile_rows]
            tile = TorchInferenceTile(block.shape[0], block.shape[1], rpu_config=config)
            tile.set_weights(block)
            tile.eval()
            tiles.append((r0, c0, tile))
    outputs, gains = [], torch.ones(chips, -(-w.shape[1] // p.tile_rows), w.shape[0])
    with torch.no_grad():
        for chip in range(chips):
            out = linear.bias.detach().expand(x.shape[0], -1).clone()
            for r0, c0, tile in tiles:
                tile.program_weights()
                tile.drift_weights(t)
                out[:, c0 : c0 + tile.out_size] += tile(x[:, r0 : r0 + tile.in_size])
                gains[chip, r0 // p.tile_rows, c0 : c0 + tile.out_size] = tile.alpha.view(-1)
            outputs.append(out)
    return torch.cat(outputs), gains


def batched_chips(linear, profile, t, x, seeds) -> tuple[torch.Tensor, torch.Tensor]:
    """The same from the batched layer, chip i of seed ``seeds[i]``."""
    layer = CrossbarLinear(linear, profile, build_family(profile))
    outputs, gains = [], []
    with torch.no_grad():
        for seed in seeds:
            streams = ChipStreams(seed)
            layer.program(streams, "layer")
            layer.drift(t, streams, "layer")
            outputs.append(layer(x))
            gains.append(layer.scales / layer.mapping)
    return torch.cat(outputs), torch.stack(gains)


def assert_same_distribution(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    """Per element over chips (dim 0): means within 4.5 standard errors, stds within 25 %."""
    n = ours.shape[0]
    se = (theirs.var(0) / n + ours.var(0) / n).sqrt()
    assert ((ours.mean(0) - theirs.mean(0)).abs() <= 4.5 * se + 1e-6).all(), (ours.mean(0), theirs.mean(0))
    ratio = ours.std(0) / theirs.std(0)
    assert ((ratio > 0.75) & (ratio < 1.33)).all(), ratio


def quiet_read(profile: DeviceProfile) -> DeviceProfile:
    """fefet without its per-read noise (aihwkit's torch tiles have no per-read weight noise;
    tests/test_periphery.py checks imc-sim's)."""
    return dataclasses.replace(profile, read_noise={**profile.read_noise, "relative": 0.0})


CASES = {
    "pcm-global": small_tiles(load_profile("pcm")),
    "pcm-per-column": dataclasses.replace(small_tiles(load_profile("pcm")), compensation="per-column"),
    "reram": small_tiles(load_profile("reram")),
    "fefet": small_tiles(quiet_read(load_profile("fefet"))),
    "gaussian": small_tiles(load_profile("gaussian")),
    "gaussian-relative": small_tiles(
        dataclasses.replace(load_profile("gaussian"),
                            programming={**load_profile("gaussian").programming, "relative": True}),
        weight_scaling="per-tile"),
}


@pytest.fixture
def one_thread():
    """Tiny tensors: one thread (a busy machine's thread pool costs more than these products)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("case", list(CASES))
def test_batched_layer_matches_aihwkit_tiles_in_distribution(case, one_thread):
    profile = CASES[case]
    linear = ragged_linear()
    x = torch.randn(1, 40, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    theirs, their_gains = aihwkit_chips(linear, profile, DAY, x, CHIPS)
    ours, our_gains = batched_chips(linear, profile, DAY, x, range(CHIPS))
    assert ours.std(0).min() > 0  # every output is really noisy
    assert_same_distribution(ours, theirs)
    if profile.compensation == "none":
        assert (our_gains == 1).all()
    else:  # the gains themselves: per tile or per column, read out through the noisy periphery
        assert_same_distribution(our_gains, their_gains)
