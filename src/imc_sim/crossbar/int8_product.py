"""The crossbar product on integer DAC codes, computed in int8 arithmetic (oneDNN, VNNI).

A DAC of at most 8 bits drives the array with integer codes c in [-127, 127], and the product
c W^T is what the tile's ADC digitises. Here that product runs on oneDNN's int8 GEMM with exact
int32 accumulation; the codes enter as uint8 (c + 128, oneDNN's zero point) and each weight as
two int8 limbs under a per-column scale m (the column's largest |w|):

    W = (m / 127) (hi + lo / 254),    hi = round(127 W / m),    lo = round(254 (127 W / m - hi))

so that a weight is held to 15-bit fixed point: its error is at most m / 64,516 (1.6e-5 of the
column's largest weight), far below the programming and read noise of any shipped profile (pcm's
smallest programming-noise std is about 1 % of g_max). The two products accumulate into one fp32
tensor in place (oneDNN's ``sum`` post-op). A correction that is itself a small part of the
product (the IR drop) takes the high limb alone, W ~ (m / 127) hi: one product, error <= m / 254.
On a CPU with
AVX-512 VNNI this is about 3x faster than the fp32 GEMM (``docs/results.md``); where oneDNN is
missing, :data:`AVAILABLE` is false and the periphery uses fp32.

The per-read noise's variance of each product, sum_j c_j^2 V_j (:mod:`imc_sim.crossbar.periphery`),
runs on the same int8 GEMM, in one product: the variances V >= 0 as one int8 limb per column scale
(127 V / max V, held to 1/254 of the column's largest variance), the squared codes as one uint8 each
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

from dataclasses import dataclass

import torch
from torch import Tensor

from imc_sim.crossbar import epilogue

AVAILABLE = torch.backends.mkldnn.is_available() and hasattr(torch.ops, "onednn") and all(
    hasattr(torch.ops.onednn, op) for op in ("qlinear_prepack", "qlinear_pointwise"))
ZERO_POINT = 128  # uint8 code = signed code + 128
CODE_MAX = 127  # largest |code| that int8 holds symmetrically
LIMB = 254  # weight of the low limb: lo is in [-127, 127] since |127 W / m - hi| <= 1/2


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
        m = weight.abs().amax(dim=1).clamp_min(torch.finfo(torch.float32).tiny)
        u = weight * (CODE_MAX / m)[:, None]
        hi = u.round()
        lo = (u - hi).mul_(LIMB).round_() if low_limb else None
        scale_hi = (m * (out_scale / CODE_MAX)).float().contiguous()
        return cls(
            hi=torch.ops.onednn.qlinear_prepack(hi.to(torch.int8), None),
            lo=None if lo is None else torch.ops.onednn.qlinear_prepack(lo.to(torch.int8), None),
            scale_hi=scale_hi,
            scale_lo=scale_hi / LIMB,
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
        """Quantise ``var`` [out, rows] per output column: V ~ (m / 127) round(127 V / m)."""
        m = var.float().amax(dim=1).clamp_min(torch.finfo(torch.float32).tiny)
        limb = (var.float() * (CODE_MAX / m)[:, None]).round_().to(torch.int8)
        return cls(torch.ops.onednn.qlinear_prepack(limb, None), (m / CODE_MAX).contiguous(),
                   torch.zeros(var.shape[0], dtype=torch.long, device=var.device))

    def variance(self, codes_u8: Tensor) -> tuple[Tensor, Tensor]:
        """sum_j c_j^2 V_j for the codes ``codes_u8`` ([N, rows] uint8 c + 128) as a float32 [N, out]
        and the step [N] of each row that multiplies it (see the module docstring)."""
        q, step = dithered_squares(codes_u8)
        out = torch.ops.onednn.qlinear_pointwise(
            q, 1.0, 0, self.limb, self.scale, self.zero_points, None, 1.0, 0, torch.float32, "none", [], "")
        return out, step
