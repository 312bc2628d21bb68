"""The crossbar product on integer DAC codes, computed in int8 arithmetic (oneDNN).

A DAC of at most 8 bits drives the array with integer codes c in [-127, 127], and the product
c W^T is what the tile's ADC digitises. Here that product runs on oneDNN's int8 GEMM with exact
int32 accumulation; the codes enter as uint8 (c + 128, oneDNN's zero point) and each weight as
two int8 limbs of at most L in magnitude under a per-column scale m (the column's largest |w|):

    W = (m / L) (hi + lo / 2L),    hi = round(L W / m),    lo = round(2L (L W / m - hi))

so that a weight's error is at most m / (4 L^2). L is 127 (m / 64,516: 1.6e-5 of the column's
largest weight) where the CPU's int8 product is exact for 8-bit weights, which is where it
multiplies with VNNI. oneDNN's kernels without VNNI (AVX2, AVX-512 before Cascade Lake) add each
pair of uint8 x int8 products in a saturating 16-bit word (vpmaddubsw), and 2 x 255 x 127 =
64,770 does not fit: there the product of full-range codes and weights came out wrong in 98 % of
its outputs (``docs/results.md``, session 18). :func:`limbs` probes the product once per process
and takes L = 63 where it saturates (2 x 255 x 63 = 32,130 fits; a weight then to m / 15,876).
Either way the error is far below the programming and read noise of any shipped profile (pcm's
smallest programming-noise std is about 1 % of g_max). The two products accumulate into one fp32
tensor in place (oneDNN's ``sum`` post-op). A correction that is itself a small part of the
product (the IR drop) takes the high limb alone, W ~ (m / L) hi: one product, error <= m / 2L.
With VNNI this is about 4x faster than the fp32 GEMM, without about 2x (``docs/results.md``);
where oneDNN is missing, or its product is not exact even with 7-bit limbs, :func:`limbs` is None
and the periphery uses fp32.

The per-read noise's variance of each product, sum_j c_j^2 V_j (:mod:`imc_sim.crossbar.periphery`),
runs on the same int8 GEMM, in one product: the variances V >= 0 as one int8 limb per column scale
(L V / max V, held to 1/2L of the column's largest variance), the squared codes as one uint8 each
in steps of their input row's own s = max_j c_j^2 / 255, rounded with a dither d_j in [0, 1):

    q_j = floor(c_j^2 / s + d_j),   sum_j c_j^2 V_j ~ s sum_j q_j V_j

The dither makes each rounding unbiased (E q_j s = c_j^2); each q_j is within one step of c_j^2 / s,
so the sum errs by at most s sum_j V_j (``tests/test_periphery.py``). Measured on pcm-chip's trained
MiniLM (``docs/results.md``): the weight-read variance errs by 0.3 % at the median, more where one
outlier sets s for a row of small codes, and there the output noise dominates: the std of an
output's noise (read and output noise together) errs by 2.5e-5 at the median and 1.4e-3 at most,
with no bias. The dither is the R2 low-discrepancy sequence over (row, input), computed in integers
(``_epilogue.c``; the torch path below computes the same numbers). Exact squares took two limbs
and a second product: 0.15x of a digital evaluation.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import Tensor

from imc_sim.crossbar import epilogue

AVAILABLE = torch.backends.mkldnn.is_available() and hasattr(torch.ops, "onednn") and all(
    hasattr(torch.ops.onednn, op) for op in ("qlinear_prepack", "qlinear_pointwise"))
ZERO_POINT = 128  # uint8 code = signed code + 128
CODE_MAX = 127  # largest |code| that int8 holds symmetrically


@dataclass(frozen=True)
class Limbs:
    """The int8 limbs a weight is held in: |limb| <= ``largest`` (L), the low limb weighing
    1 / 2L of the high one (|L W / m - hi| <= 1/2, so lo is in [-L, L])."""

    largest: int

    @property
    def low(self) -> int:
        """2L: the high limb's weight over the low limb's."""
        return 2 * self.largest

    @property
    def two_limb_error(self) -> float:
        """A weight's largest error with both limbs, relative to its column's largest: 1 / 4L^2."""
        return 1.0 / (2 * self.largest * self.low)

    @property
    def one_limb_error(self) -> float:
        """A weight's largest error with the high limb alone, relative to its column's largest: 1 / 2L."""
        return 1.0 / self.low


def _exact_with(largest: int) -> bool:
    """Whether oneDNN's int8 product is exact for codes and weights at their largest: uint8 255
    (code 127) against weights ``largest``, 256 inputs, where a saturating 16-bit pair sum would
    lose 2 x 255 x 127 - 32,767 per pair. On the CPU, where oneDNN's int8 product runs: the probe is
    of this processor's kernel."""
    codes = torch.full((64, 256), 255, dtype=torch.uint8)
    weights = torch.ops.onednn.qlinear_prepack(torch.full((32, 256), largest, dtype=torch.int8), None)
    out = torch.ops.onednn.qlinear_pointwise(
        codes, 1.0, ZERO_POINT, weights, torch.ones(32), torch.zeros(32, dtype=torch.long), None, 1.0, 0,
        torch.float32, "none", [], "")
    return bool((out == float(CODE_MAX * largest * 256)).all())


@functools.cache
def limbs() -> Limbs | None:
    """The limbs this process's int8 product is exact with (probed once: see the module
    docstring): 127, else 63, else None (no int8 product)."""
    if not AVAILABLE:
        return None
    return next((Limbs(n) for n in (127, 63) if _exact_with(n)), None)


def exact_limbs() -> Limbs:
    """:func:`limbs`, which the caller has checked (the periphery packs only where it is set)."""
    limb = limbs()
    if limb is None:
        raise RuntimeError("this CPU has no exact int8 product: the periphery takes fp32 here")
    return limb


def to_uint8_codes(codes: Tensor) -> Tensor:
    """Signed integer codes in [-127, 127] (float) as the uint8 input oneDNN takes."""
    return codes.add(ZERO_POINT).to(torch.uint8)


@dataclass(frozen=True)
class Int8Weights:
    """One tile's weights [out, rows] as prepacked int8 limbs (the low one None: high limb only)
    and their column scales."""

    hi: Tensor
    lo: Tensor | None
    scale_hi: Tensor
    scale_lo: Tensor
    zero_points: Tensor

    @classmethod
    @torch.no_grad()
    def pack(cls, weight: Tensor, out_scale: float = 1.0, low_limb: bool = True) -> Int8Weights:
        """Split ``weight`` [out, rows] into limbs (the high one alone without ``low_limb``);
        :meth:`product` computes ``out_scale * c W^T``."""
        limb = exact_limbs()
        m = weight.abs().amax(dim=1).clamp_min(torch.finfo(torch.float32).tiny)
        u = weight * (limb.largest / m)[:, None]
        hi = u.round()
        lo = (u - hi).mul_(limb.low).round_() if low_limb else None
        scale_hi = (m * (out_scale / limb.largest)).float().contiguous()
        return cls(
            hi=torch.ops.onednn.qlinear_prepack(hi.to(torch.int8), None),
            lo=None if lo is None else torch.ops.onednn.qlinear_prepack(lo.to(torch.int8), None),
            scale_hi=scale_hi,
            scale_lo=scale_hi / limb.low,
            zero_points=torch.zeros(weight.shape[0], dtype=torch.long),
        )

    def product(self, codes_u8: Tensor) -> Tensor:
        """``out_scale * c W^T`` as float32 [N, out], c = ``codes_u8`` - 128 ([N, rows] uint8)."""
        out = torch.ops.onednn.qlinear_pointwise(
            codes_u8, 1.0, ZERO_POINT, self.hi, self.scale_hi, self.zero_points, None, 1.0, 0,
            torch.float32, "none", [], "")
        if self.lo is None:
            return out
        return torch.ops.onednn.qlinear_pointwise.binary(  # adds the low limb's product onto out
            codes_u8, 1.0, ZERO_POINT, self.lo, self.scale_lo, self.zero_points, out, None, 1.0, 0,
            torch.float32, 1.0, 0, "sum", 1.0, "none", [], "")


SQUARE_MAX = 255  # the largest squared-code level of a row
DITHER_A, DITHER_B = 3242174889, 2447445414  # 2^32 / g and 2^32 / g^2, g the plastic number (R2)


def dithered_squares(codes_u8: Tensor) -> tuple[Tensor, Tensor]:
    """The squares of the codes ``codes_u8`` (uint8 c + 128, [N, rows]) as uint8 levels q [N, rows]
    in steps s [N] of each row (see the module docstring): in the compiled pass where it runs, else
    in torch operations that give the same numbers."""
    if epilogue.compiled_for(codes_u8):
        return epilogue.dithered_squares(codes_u8.contiguous())
    n, rows = codes_u8.shape
    squares = (codes_u8.to(torch.int32) - ZERO_POINT).square_()
    m = squares.amax(dim=1, keepdim=True).float()
    inv = torch.where(m > 0, SQUARE_MAX / m, torch.zeros_like(m))
    i = torch.arange(n, device=codes_u8.device, dtype=torch.int64)[:, None]
    j = torch.arange(rows, device=codes_u8.device, dtype=torch.int64)
    dither = ((i * DITHER_A + j * DITHER_B) & 0xFFFFFFFF).bitwise_right_shift_(8).float().mul_(2.0**-24)
    q = (squares.float() * inv).add_(dither).floor_().clamp_(max=SQUARE_MAX).to(torch.uint8)
    return q, (m / SQUARE_MAX).squeeze(1)


@dataclass(frozen=True)
class Int8Variance:
    """One tile's per-read weight variances V [out, rows] (>= 0) as one prepacked int8 limb."""

    limb: Tensor
    scale: Tensor
    zero_points: Tensor

    @classmethod
    @torch.no_grad()
    def pack(cls, var: Tensor) -> Int8Variance:
        """Quantise ``var`` [out, rows] per output column: V ~ (m / L) round(L V / m), L of :func:`limbs`."""
        largest = exact_limbs().largest
        m = var.float().amax(dim=1).clamp_min(torch.finfo(torch.float32).tiny)
        limb = (var.float() * (largest / m)[:, None]).round_().to(torch.int8)
        return cls(torch.ops.onednn.qlinear_prepack(limb, None), (m / largest).contiguous(),
                   torch.zeros(var.shape[0], dtype=torch.long, device=var.device))

    def variance(self, codes_u8: Tensor) -> tuple[Tensor, Tensor]:
        """sum_j c_j^2 V_j for the codes ``codes_u8`` ([N, rows] uint8 c + 128) as a float32 [N, out]
        and the step [N] of each row that multiplies it (see the module docstring)."""
        q, step = dithered_squares(codes_u8)
        out = torch.ops.onednn.qlinear_pointwise(
            q, 1.0, 0, self.limb, self.scale, self.zero_points, None, 1.0, 0, torch.float32, "none", [], "")
        return out, step
