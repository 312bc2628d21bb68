"""The crossbar product on integer DAC codes, computed in int8 arithmetic (oneDNN, VNNI).

A DAC of at most 8 bits drives the array with integer codes c in [-127, 127], and the product
c W^T is what the tile's ADC digitises. Here that product runs on oneDNN's int8 GEMM with exact
int32 accumulation; the codes enter as uint8 (c + 128, oneDNN's zero point) and each weight as
two int8 limbs under a per-column scale m (the column's largest |w|):

    W = (m / 127) (hi + lo / 254),    hi = round(127 W / m),    lo = round(254 (127 W / m - hi))

so that a weight is held to 15-bit fixed point: its error is at most m / 64,516 (1.6e-5 of the
column's largest weight), far below the programming and read noise of any shipped profile (pcm's
smallest programming-noise std is about 1 % of g_max). The two products accumulate into one fp32
tensor in place (oneDNN's ``sum`` post-op). On a CPU with
AVX-512 VNNI this is about 3x faster than the fp32 GEMM (``docs/results.md``); where oneDNN is
missing, :data:`AVAILABLE` is false and the periphery uses fp32.

The per-read noise's variance of each product, sum_j c_j^2 V_j (:mod:`imc_sim.crossbar.periphery`),
runs on the same int8 GEMM: the squared codes enter exactly as two uint8 limbs (c^2 = 128 hi + lo)
and the variances V >= 0 as one int8 limb per column scale (127 V / max V, held to 1/254 of the
column's largest variance: a noise's variance, whose sampling error over a dev set is far larger).
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
    """One tile's weights [out, rows] as two prepacked int8 limbs and their column scales."""

    hi: Tensor
    lo: Tensor
    scale_hi: Tensor
    scale_lo: Tensor
    zero_points: Tensor

    @classmethod
    @torch.no_grad()
    def pack(cls, weight: Tensor, out_scale: float = 1.0) -> Int8Weights:
        """Split ``weight`` [out, rows] into limbs; :meth:`accumulate` adds ``out_scale * c W^T``."""
        m = weight.abs().amax(dim=1).clamp_min(torch.finfo(torch.float32).tiny)
        u = weight * (CODE_MAX / m)[:, None]
        hi = u.round()
        lo = (u - hi).mul_(LIMB).round_()
        scale_hi = (m * (out_scale / CODE_MAX)).float().contiguous()
        return cls(
            hi=torch.ops.onednn.qlinear_prepack(hi.to(torch.int8), None),
            lo=torch.ops.onednn.qlinear_prepack(lo.to(torch.int8), None),
            scale_hi=scale_hi,
            scale_lo=scale_hi / LIMB,
            zero_points=torch.zeros(weight.shape[0], dtype=torch.long),
        )

    def product(self, codes_u8: Tensor) -> Tensor:
        """``out_scale * c W^T`` as float32 [N, out], c = ``codes_u8`` - 128 ([N, rows] uint8)."""
        out = torch.ops.onednn.qlinear_pointwise(
            codes_u8, 1.0, ZERO_POINT, self.hi, self.scale_hi, self.zero_points, None, 1.0, 0,
            torch.float32, "none", [], "")
        return torch.ops.onednn.qlinear_pointwise.binary(  # adds the low limb's product onto out
            codes_u8, 1.0, ZERO_POINT, self.lo, self.scale_lo, self.zero_points, out, None, 1.0, 0,
            torch.float32, 1.0, 0, "sum", 1.0, "none", [], "")


def square_limbs(codes_u8: Tensor) -> tuple[Tensor, Tensor]:
    """The squares of the codes ``codes_u8`` (uint8 c + 128, [N, rows]) as uint8 limbs (hi, lo),
    c^2 = 128 hi + lo: in the compiled pass where it runs, else in torch's integer operations."""
    if epilogue.compiled_for(codes_u8):
        return epilogue.code_squares(codes_u8.contiguous())
    squares = (codes_u8.to(torch.int32) - ZERO_POINT).square_()
    return (squares >> 7).to(torch.uint8), (squares & 127).to(torch.uint8)


@dataclass(frozen=True)
class Int8Variance:
    """One tile's per-read weight variances V [out, rows] (>= 0) as one prepacked int8 limb."""

    limb: Tensor
    scale_hi: Tensor
    scale_lo: Tensor
    zero_points: Tensor

    @classmethod
    @torch.no_grad()
    def pack(cls, var: Tensor) -> Int8Variance:
        """Quantise ``var`` [out, rows] per output column: V ~ (m / 127) round(127 V / m)."""
        m = var.float().amax(dim=1).clamp_min(torch.finfo(torch.float32).tiny)
        limb = (var.float() * (CODE_MAX / m)[:, None]).round_().to(torch.int8)
        scale_lo = (m / CODE_MAX).contiguous()
        return cls(torch.ops.onednn.qlinear_prepack(limb, None), scale_lo * 128, scale_lo,
                   torch.zeros(var.shape[0], dtype=torch.long, device=var.device))

    def variance(self, codes_u8: Tensor) -> Tensor:
        """sum_j c_j^2 V_j as float32 [N, out] for the codes ``codes_u8`` ([N, rows] uint8 c + 128)."""
        hi, lo = square_limbs(codes_u8)
        out = torch.ops.onednn.qlinear_pointwise(
            hi, 1.0, 0, self.limb, self.scale_hi, self.zero_points, None, 1.0, 0, torch.float32, "none",
            [], "")
        return torch.ops.onednn.qlinear_pointwise.binary(  # adds the low limb's part onto out
            lo, 1.0, 0, self.limb, self.scale_lo, self.zero_points, out, None, 1.0, 0,
            torch.float32, 1.0, 0, "sum", 1.0, "none", [], "")
