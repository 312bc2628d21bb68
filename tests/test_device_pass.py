"""The compiled device pass (``pcm_tiles`` in ``_epilogue.c``) programs and drifts PCM tiles as the
torch path does: the same device normals and the same law, so programming gives the same weights bit
for bit and drift the same to float rounding (its exp and log are polynomials), with and without a
drift table, with several device pairs per weight, stuck devices, dead columns, padding and tiles
whose size is not a multiple of the generator's groups."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from imc_sim.crossbar import epilogue
from imc_sim.crossbar.streams import ChipStreams
from imc_sim.crossbar.tiles import CrossbarLinear
from imc_sim.devices import build_family
from imc_sim.devices.profile import Faults, load_profile

pytestmark = pytest.mark.skipif(not epilogue.AVAILABLE, reason="the compiled pass is not built here")

DAY = 86400.0


def layer_on(profile_name: str, tile: int, faults: bool, compiled: bool) -> CrossbarLinear:
    profile = load_profile(profile_name)
    profile = dataclasses.replace(profile, periphery=dataclasses.replace(
        profile.periphery, tile_rows=tile, tile_cols=tile))
    if faults:
        faulty = Faults(stuck_low=0.05, stuck_high=0.03, dead_columns=0.1)
        profile = dataclasses.replace(profile, faults=faulty)
    linear = torch.nn.Linear(50, 45)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(45, 50, generator=torch.Generator().manual_seed(0)))
    layer = CrossbarLinear(linear, profile, build_family(profile))
    if not compiled:
        layer._compiled_law = lambda t: None  # the torch path, by groups of tiles
    return layer


def chip_states(layer: CrossbarLinear) -> list[torch.Tensor]:
    streams = ChipStreams(11)
    layer.program(streams, "layer")
    states = [layer.programmed.clone()]
    for t in (DAY, 0.0, 3600.0):
        layer.drift(t, streams, "layer")
        states.append(layer.weights.clone())
    return states


@pytest.mark.parametrize(("profile", "tile", "faults"), [
    ("pcm", 32, False),        # aihwkit's log fit of nu, one pair per weight
    ("pcm-chip", 32, False),   # a drift table, two pairs per weight
    ("pcm-chip", 20, True),    # 400 devices per tile side: groups straddle the sides; faults
    ("pcm", 16, True),
])
def test_the_device_pass_is_the_torch_path(profile, tile, faults):
    compiled = chip_states(layer_on(profile, tile, faults, compiled=True))
    torch_path = chip_states(layer_on(profile, tile, faults, compiled=False))
    assert torch.equal(compiled[0], torch_path[0])  # programming: bit for bit
    for a, b in zip(compiled[1:], torch_path[1:], strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)  # drift: float rounding
    assert not torch.equal(compiled[1], compiled[3])  # 1 d and 1 h differ
    assert (compiled[0] == 0).sum() > 0  # the padding (and dead columns) hold no weight


def test_the_device_pass_runs_where_it_should():
    """pcm tiles on a CPU take it; a weight-level family and the pass switched off do not."""
    assert layer_on("pcm", 32, False, compiled=True)._compiled_law(None) is not None
    gaussian = load_profile("gaussian")
    layer = CrossbarLinear(torch.nn.Linear(8, 8), gaussian, build_family(gaussian))
    assert layer._compiled_law(None) is None
    before = epilogue.use_compiled
    try:
        epilogue.use_compiled = False
        assert layer_on("pcm", 32, False, compiled=True)._compiled_law(DAY) is None
    finally:
        epilogue.use_compiled = before


def test_the_device_pass_refuses_what_it_would_read_out_of_bounds():
    """The pass trusts its sizes: a missing or short per-tile tensor, stuck devices or live mask
    of the wrong size, or half a drift's arguments are a ValueError, not a crash."""
    layer = layer_on("pcm-chip", 20, True, compiled=True)
    law = layer.family.compiled_law(None)
    target = layer.target.flatten(0, 1)
    tiles = target.shape[0]
    ratio, seeds = torch.ones(tiles), torch.arange(tiles)
    epilogue.pcm_tiles(law, 2, target, ratio, seeds)  # the good call
    bad = [dict(ratio_target=None), dict(seeds_program=torch.arange(tiles + 1)),
           dict(stuck=torch.zeros(tiles, 2, 20, 20, dtype=torch.int8)), dict(live=torch.ones(tiles, 20)),
           dict(ratio_programmed=torch.ones(tiles))]
    for change in bad:
        args = {"ratio_target": ratio, "seeds_program": seeds, **change}
        with pytest.raises(ValueError, match="pcm_tiles|drift needs"):
            epilogue.pcm_tiles(law, 2, target, **args)
