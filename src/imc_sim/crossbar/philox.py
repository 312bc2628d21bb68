"""A chip's device normals from the compiled passes' counter-based generator, on any torch device.

Programming, drift and faults draw one standard normal per device of a tile, keyed by the tile's
seed (:mod:`~imc_sim.crossbar.streams`). They come from Philox4x32-10 and Box-Muller as
``_passes.h`` lays them out: element k of a tile is element k % 64 of counter group k // 64, whose
lane l (0..15) has the counter (16 group + l, 0, 0x243F6A88, 0x85A308D3) under the key (low, high
word of the seed); the words (c0, c1) give elements l (r1 cos) and 16 + l (r1 sin), (c2, c3)
elements 32 + l and 48 + l, with

    u1 = (c0 >> 8 + 1/2) / 2^24,  u2 = (c1 >> 8) / 2^24,  r1 = sqrt(-2 ln u1),  z = r1 cos(2 pi u2)

and ln and cos as the same float32 polynomials. On a CPU where the pass is built it fills the
tiles (0.7 ns per normal per thread); elsewhere :func:`torch_tile_normals` computes the same
numbers, bit for bit, in torch's integer and float32 operations (tests/test_philox.py), so a chip
does not depend on whether the pass is built, on the thread count, or on the torch device.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from imc_sim.crossbar import epilogue

MASK = 0xFFFFFFFF
LANES, GROUP = 16, 64
MULTIPLIERS = (0xD2511F53, 0xCD9E8D57)  # Philox4x32's round multipliers
WEYL = (0x9E3779B9, 0xBB67AE85)  # its key increments per round
FIXED_WORDS = (0x243F6A88, 0x85A308D3)  # the counter's last two words (digits of pi)
ROUNDS = 10
PIECE = 1 << 22  # lanes per piece of a torch fill (bounds its integer temporaries)


def _f32(numerator: float, denominator: float = 1.0) -> float:
    """numerator / denominator rounded as C rounds a float constant expression (2.0f / 3)."""
    return float(np.float32(numerator) / np.float32(denominator))


LN2 = _f32(0.69314718055994531)
LOG_SERIES = (_f32(2.0, 3), _f32(2.0, 5), _f32(2.0, 7), _f32(2.0, 9))  # 2 atanh(t) = 2t + (2/3) t^3 + ...
TWO_PI = _f32(6.28318530717958647692)
SIN_SERIES = (_f32(-1.0, 6), _f32(1.0, 120), _f32(-1.0, 5040), _f32(1.0, 362880), _f32(-1.0, 39916800))
UNIT = _f32(1.0, 16777216.0)


def _mul_hi_lo(multiplier: int, c: Tensor) -> tuple[Tensor, Tensor]:
    """The high and low 32-bit words of multiplier * c (c < 2^32 in int64), from two products of
    at most 48 bits (no int64 overflow)."""
    a, b = c * (multiplier >> 16), c * (multiplier & 0xFFFF)
    hi = (a + (b >> 16)) >> 16
    lo = ((a & 0xFFFF) << 16).add_(b).bitwise_and_(MASK)
    return hi, lo


def philox_words(counter: Tensor, k0: Tensor, k1: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Philox4x32-10 of the counters (counter & MASK, counter >> 32, FIXED_WORDS) under keys (k0,
    k1) (int64 tensors broadcast together, values below 2^32): the four output words."""
    c0, c1 = counter & MASK, counter >> 32
    c2, c3 = torch.full_like(c0, FIXED_WORDS[0]), torch.full_like(c0, FIXED_WORDS[1])
    for _ in range(ROUNDS):
        hi0, lo0 = _mul_hi_lo(MULTIPLIERS[0], c0)
        hi1, lo1 = _mul_hi_lo(MULTIPLIERS[1], c2)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
        k0, k1 = (k0 + WEYL[0]) & MASK, (k1 + WEYL[1]) & MASK
    return c0, c1, c2, c3


def _log_unit(x: Tensor) -> Tensor:
    """ln x for float32 x in (0, 1] as ``_passes.h``'s log_unit: x = m 2^e, ln m = 2 atanh(t),
    t = (m - 1) / (m + 1), by its series to t^9."""
    bits = x.view(torch.int32)
    e = ((bits >> 23) - 127).float()
    m = ((bits & 0x007FFFFF) | 0x3F800000).view(torch.float32)
    t = (m - 1.0) / (m + 1.0)
    t2 = t * t
    series = t2 * LOG_SERIES[3] + LOG_SERIES[2]
    for c in (LOG_SERIES[1], LOG_SERIES[0], 2.0):
        series = t2 * series + c
    return e * LN2 + t * series


def _cos_turns(u: Tensor) -> Tensor:
    """cos(2 pi u) as ``_passes.h``'s cos_turns: -sin(2 pi w), w = |u - rint(u)| - 1/4, sin by its
    odd series to x^11."""
    x = ((u - torch.round(u)).abs() - 0.25) * TWO_PI
    x2 = x * x
    series = x2 * SIN_SERIES[4] + SIN_SERIES[3]
    for c in (SIN_SERIES[2], SIN_SERIES[1], SIN_SERIES[0], 1.0):
        series = x2 * series + c
    return -(x * series)


def _uniform(word: Tensor, half: bool) -> Tensor:
    """(word >> 8 (+ 1/2)) / 2^24 in float32: in (0, 1) with the half, [0, 1) without."""
    u = (word >> 8).float()
    return (u + 0.5 if half else u) * UNIT


def _sqrt(x: Tensor) -> Tensor:
    """The correctly rounded float32 square root, as C's sqrtf: taken in float64 and rounded
    (torch's float32 sqrt on a CPU is off by an ulp for 1 in 6 numbers)."""
    return x.double().sqrt_().float()


def _group_normals(groups: Tensor, k0: Tensor, k1: Tensor) -> Tensor:
    """The 64 normals of each counter group ``groups`` [..., G] under keys [..., 1]: [..., G, 64]."""
    counter = (groups.unsqueeze(-1) * LANES + torch.arange(LANES, device=groups.device)).flatten(-2)
    w0, w1, w2, w3 = philox_words(counter, k0, k1)
    r1, r2 = (_sqrt(_log_unit(_uniform(w, True)) * -2.0) for w in (w0, w2))
    a1, a2 = _uniform(w1, False), _uniform(w3, False)
    parts = (r1 * _cos_turns(a1), r1 * _cos_turns(a1 - 0.25), r2 * _cos_turns(a2), r2 * _cos_turns(a2 - 0.25))
    shape = (*groups.shape, LANES)
    return torch.stack([p.view(shape) for p in parts], dim=-2).flatten(-2)


def torch_tile_normals(out: Tensor, seeds: Tensor) -> Tensor:
    """Fill ``out`` [tiles, per_tile] (float32, contiguous) with tile t's normals under key
    ``seeds[t]`` (int64, on ``out``'s device) in torch operations, a piece of groups at a time."""
    tiles, per_tile = out.shape
    groups = -(-per_tile // GROUP)
    k0, k1 = (seeds & MASK).unsqueeze(1), (seeds >> 32).unsqueeze(1)
    step = max(1, PIECE // (LANES * tiles))
    for first in range(0, groups, step):
        count = min(step, groups - first)
        ids = torch.arange(first, first + count, device=out.device).expand(tiles, count)
        z = _group_normals(ids, k0, k1).flatten(1)
        start = first * GROUP
        width = min(z.shape[1], per_tile - start)
        out.narrow(1, start, width).copy_(z.narrow(1, 0, width))
    return out


def tile_normals(out: Tensor, seeds: list[int]) -> Tensor:
    """Fill ``out`` [tiles, ...] (float32, contiguous) with each tile's device normals, tile t's
    under key ``seeds[t]`` (63-bit): the compiled pass on a CPU where it is built, else torch."""
    flat = out.view(out.shape[0], -1)
    keys = torch.tensor(seeds, dtype=torch.int64, device=out.device)
    if epilogue.compiled_for(out):
        epilogue.tile_normals(flat, keys)
    else:
        torch_tile_normals(flat, keys)
    return out
