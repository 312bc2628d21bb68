"""The compiled passes' Gaussian generator (``_passes.h``) is Philox4x32-10 and Box-Muller, laid out as
its comment says: a wrong round constant or counter layout would still give normals that look
normal, so the noise is checked against a reference computed here, whose Philox is itself checked
against Random123's published known-answer vectors. A chip's device normals come from the same
generator, in C on a CPU and in torch elsewhere (:mod:`imc_sim.crossbar.philox`): the two give the
same numbers bit for bit, so a chip does not depend on whether the pass is built."""

import dataclasses
import math

import pytest
import torch

from imc_sim.crossbar import epilogue
from imc_sim.crossbar import philox as philox_module
from imc_sim.crossbar.philox import philox_words, torch_tile_normals
from imc_sim.crossbar.streams import ChipStreams
from imc_sim.crossbar.tiles import CrossbarLinear
from imc_sim.devices import build_family
from imc_sim.devices.profile import load_profile

COMPILED = pytest.mark.skipif(not epilogue.AVAILABLE, reason="the compiled pass is not built here")

MASK = 0xFFFFFFFF
GROUP, LANES = 64, 16

# Random123 kat_vectors: (counter, key) -> Philox4x32-10 output
KNOWN_ANSWERS = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((MASK, MASK, MASK, MASK), (MASK, MASK), (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


def philox(counter: tuple[int, ...], key: tuple[int, int]) -> tuple[int, int, int, int]:
    """Philox4x32-10 (Salmon et al., SC 2011) in Python integers."""
    c0, c1, c2, c3 = counter
    k0, k1 = key
    for _ in range(10):
        p0, p1 = 0xD2511F53 * c0, 0xCD9E8D57 * c2
        c0, c1, c2, c3 = (p1 >> 32) ^ c1 ^ k0, p1 & MASK, (p0 >> 32) ^ c3 ^ k1, p0 & MASK
        k0, k1 = (k0 + 0x9E3779B9) & MASK, (k1 + 0xBB67AE85) & MASK
    return c0, c1, c2, c3


@pytest.mark.parametrize(("counter", "key", "expected"), KNOWN_ANSWERS)
def test_the_reference_philox_gives_random123_known_answers(counter, key, expected):
    assert philox(counter, key) == expected


def reference_normal(i: int, j: int, columns: int, seed: int) -> float:
    """Element (i, j)'s normal: group i * groups + j // 64 of its row, whose lane l's counter is
    (group * 16 + l, 0, pi's digits) under key (low, high word of seed); Box-Muller of the words
    (c0, c1) gives elements l and 16 + l of the group, (c2, c3) elements 32 + l and 48 + l."""
    group = i * math.ceil(columns / GROUP) + j // GROUP
    t = j % GROUP
    lane, block = t % LANES, t // LANES
    counter = group * LANES + lane
    words = philox((counter & MASK, counter >> 32, 0x243F6A88, 0x85A308D3), (seed & MASK, seed >> 32))
    radius_word, angle_word = words[2 * (block // 2)], words[2 * (block // 2) + 1]
    u_radius = ((radius_word >> 8) + 0.5) / 2**24
    u_angle = (angle_word >> 8) / 2**24
    angle = 2 * math.pi * u_angle
    return math.sqrt(-2 * math.log(u_radius)) * (math.sin(angle) if block % 2 else math.cos(angle))


@COMPILED
def test_the_periphery_noise_is_box_muller_of_philox():
    rows, columns = 3, 150  # three groups per row, the last one partial
    z = torch.empty(rows, columns)
    epilogue.apply_compiled(torch.zeros(rows, columns), 1.0, 1.0, False, 1e9, None, torch.ones(columns), None,
                            z, torch.Generator().manual_seed(11))
    seed = int(torch.randint(0, 2**63 - 1, (1,), generator=torch.Generator().manual_seed(11)))
    expected = torch.tensor([[reference_normal(i, j, columns, seed) for j in range(columns)]
                             for i in range(rows)])
    torch.testing.assert_close(z, expected, rtol=1e-4, atol=1e-4)  # float32 log and cos polynomials


@pytest.mark.parametrize("word", range(4))
def test_torch_philox_words_are_the_reference(word):
    """The torch Philox (32 x 32-bit products from 48-bit pieces, no int64 overflow) gives the
    reference's words, for counters and keys with every bit set."""
    counters = [0, 1, 2**32 - 1, 2**32, 2**40 + 12345, 2**63 - 1]
    keys = [(0, 0), (MASK, MASK), (0xA4093822, 0x299F31D0)]
    for k0, k1 in keys:
        got = philox_words(torch.tensor(counters), torch.tensor(k0), torch.tensor(k1))[word]
        expected = [philox_ref_words(c, (k0, k1))[word] for c in counters]
        assert got.tolist() == expected


def philox_ref_words(counter: int, key: tuple[int, int]) -> tuple[int, int, int, int]:
    return philox((counter & MASK, counter >> 32, 0x243F6A88, 0x85A308D3), key)


def test_torch_device_normals_follow_the_layout():
    """Tile t's element k is element k % 64 of counter group k // 64 under the tile's own key."""
    seeds = [3, 2**62 + 977]
    z = torch_tile_normals(torch.empty(2, 150), torch.tensor(seeds))
    expected = torch.tensor([[reference_normal(0, k, 150, seed) for k in range(150)] for seed in seeds])
    torch.testing.assert_close(z, expected, rtol=1e-4, atol=1e-4)  # float32 log and cos polynomials


@pytest.mark.parametrize("piece", [LANES * 3, LANES * 3 * 2])
def test_a_torch_fill_in_several_pieces_is_the_fill_in_one(piece, monkeypatch):
    """A large chip's torch fill goes a piece of counter groups at a time (``PIECE`` lanes, which
    bounds its temporaries): pieces of one or two groups per tile, the last one past the tile's
    end, give the numbers of one piece."""
    seeds = torch.tensor([11, 2**40 + 3, 7])
    whole = torch_tile_normals(torch.empty(3, 5 * GROUP + 17), seeds)
    monkeypatch.setattr(philox_module, "PIECE", piece)
    assert torch.equal(torch_tile_normals(torch.empty(3, 5 * GROUP + 17), seeds), whole)


@COMPILED
@pytest.mark.parametrize(("tiles", "per_tile"), [(1, 1), (3, 150), (2, 64), (4, 2 * 2 * 64 * 96)])
def test_compiled_device_normals_are_torch_s_bit_for_bit(tiles, per_tile):
    seeds = torch.randint(0, 2**63 - 1, (tiles,), generator=torch.Generator().manual_seed(per_tile))
    compiled = epilogue.tile_normals(torch.empty(tiles, per_tile), seeds)
    assert torch.equal(compiled, torch_tile_normals(torch.empty(tiles, per_tile), seeds))
    if compiled.numel() > 10_000:
        assert abs(compiled.mean()) < 0.02 and compiled.std() == pytest.approx(1.0, abs=0.02)


@COMPILED
def test_compiled_device_normals_do_not_depend_on_the_thread_count():
    seeds = torch.tensor([5, 6, 7])
    before = torch.get_num_threads()
    try:
        fills = []
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            fills.append(epilogue.tile_normals(torch.empty(3, 70_001), seeds))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(fills[0], fills[1]) and torch.equal(fills[0], fills[2])


def test_the_compiled_fill_refuses_a_wrong_dtype_or_shape():
    if not epilogue.AVAILABLE:
        pytest.skip("the compiled pass is not built here")
    with pytest.raises(ValueError, match="int64 seeds"):
        epilogue.tile_normals(torch.empty(2, 8), torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="int64 seeds"):
        epilogue.tile_normals(torch.empty(2, 8), torch.tensor([1.0, 2.0]))


@COMPILED
def test_a_chip_s_devices_do_not_depend_on_the_compiled_pass(monkeypatch):
    """pcm-chip (two pairs per weight) programmed and drifted with the compiled passes and with none
    (torch's Philox and laws): the same programmed weights bit for bit, the same drifted ones to
    float rounding (the compiled drift's exp and log; the compensation read-out, a periphery read,
    may differ)."""
    profile = load_profile("pcm-chip")
    profile = dataclasses.replace(profile, periphery=dataclasses.replace(
        profile.periphery, tile_rows=32, tile_cols=32))
    layer = CrossbarLinear(torch.nn.Linear(48, 40), profile, build_family(profile))
    states = []
    for compiled in (True, False):
        monkeypatch.setattr(epilogue, "use_compiled", compiled)
        streams = ChipStreams(3)
        layer.program(streams, "layer")
        programmed = layer.weights.clone()
        layer.drift(86400.0, streams, "layer")
        states.append((programmed, layer.weights.clone()))
    assert torch.equal(states[0][0], states[1][0])
    torch.testing.assert_close(states[0][1], states[1][1], rtol=0, atol=1e-6)
    assert (states[0][0] - states[0][1]).abs().max() > 1e-3  # drift changed the weights
