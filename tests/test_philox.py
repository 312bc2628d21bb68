"""The compiled passes' Gaussian generator (``_passes.h``) is Philox4x32-10 and Box-Muller, laid out as
its comment says: a wrong round constant or counter layout would still give normals that look
normal, so the noise is checked against a reference computed here, whose Philox is itself checked
against Random123's published known-answer vectors."""

import math

import pytest
import torch

from imc_sim.crossbar import epilogue

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


@pytest.mark.skipif(not epilogue.AVAILABLE, reason="the compiled pass is not built here")
def test_the_periphery_noise_is_box_muller_of_philox():
    rows, columns = 3, 150  # three groups per row, the last one partial
    z = torch.empty(rows, columns)
    epilogue.apply_compiled(torch.zeros(rows, columns), 1.0, 1.0, False, 1e9, None, torch.ones(columns), None,
                            z, torch.Generator().manual_seed(11))
    seed = int(torch.randint(0, 2**63 - 1, (1,), generator=torch.Generator().manual_seed(11)))
    expected = torch.tensor([[reference_normal(i, j, columns, seed) for j in range(columns)]
                             for i in range(rows)])
    torch.testing.assert_close(z, expected, rtol=1e-4, atol=1e-4)  # float32 log and cos polynomials
