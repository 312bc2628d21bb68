"""The crossbar MVM with its periphery, fused: DAC, analog product, output noise, ADC, rescaling.

It computes what aihwkit's ``AnalogMVM.matmul`` computes for a ONE_PASS tile with ``abs-max``
(or no) noise management and no bound management (``tests/test_periphery.py`` checks the two agree)
but in integer DAC codes, so that every elementwise step runs once, in place:

    s      = max_j |x_j|                         (noise management, per input row and row tile)
    c      = round(x / (s * d_in))               (DAC codes, d_in = 2 inp_bound / (2^b - 2))
    y      = c W^T / q + sqrt((out_noise / d_in)^2 + sum_j c_j^2 V_j) / q xi
                                                 (in ADC steps q = d_out / d_in; xi ~ N(0, 1),
                                                  one per output and read)
    y      = clamp(round(y), +-out_bound / d_out)   (ADC)
    output = y * s * d_out * column_scale        (digital: mapping scales, drift compensation)

``W`` holds the tile weights in [-1, 1] (after the mapping), stacked per row tile as
``[row_tiles, out, rows]``; a layer's row tiles are summed digitally after their ADCs. ``V`` is the
per-read variance of each tile weight (cycle-to-cycle read noise, :func:`read_variance`): weight
fluctuations drawn afresh at every MVM add, for each input vector and output, a Gaussian of
variance sum_j c_j^2 V_j to the product, which is exactly their effect on that output; its
variance comes from one bf16 GEMM of the squared codes with ``V``. Where the
DAC codes fit int8 (a DAC of at most 8 bits) the product c W^T runs in int8 arithmetic
(:mod:`imc_sim.crossbar.int8_product`), else in fp32. Only the product's arithmetic differs; every
periphery step is the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from aihwkit.inference.noise.base import BaseNoiseModel
from torch import Tensor

from imc_sim.crossbar import epilogue, int8_product
from imc_sim.crossbar.int8_product import Int8Weights
from imc_sim.devices.profile import Periphery


@dataclass(frozen=True)
class Converters:
    """Periphery constants in DAC-code units (see the module docstring)."""

    perfect: bool
    managed: bool
    d_in: float
    quant_in: bool
    out_noise: float
    adc_step: float
    out_bound: float
    inp_bound: float
    int8: bool = False  # the DAC codes fit int8: the product runs in int8 arithmetic

    @classmethod
    def from_periphery(cls, p: Periphery) -> Converters:
        d_in = 2 * p.inp_bound / (2**p.dac_bits - 2) if p.dac_bits else 1.0
        d_out = 2 * p.out_bound / (2**p.adc_bits - 2) if p.adc_bits else 0.0  # 0: no ADC rounding
        code_max = p.inp_bound / d_in
        return cls(
            perfect=p.perfect, managed=p.noise_management == "abs-max", d_in=d_in,
            quant_in=p.dac_bits is not None, out_noise=p.out_noise / d_in, adc_step=d_out / d_in,
            out_bound=p.out_bound / d_in, inp_bound=code_max,
            int8=(int8_product.AVAILABLE and p.dac_bits is not None
                  and code_max <= int8_product.CODE_MAX),
        )

    @property
    def step(self) -> float:
        """One ADC step in product units (1 without an ADC)."""
        return self.adc_step if self.adc_step > 0 else 1.0


def read_variance(u: Tensor, noise_model: BaseNoiseModel, w_noise: float) -> Tensor | None:
    """Per-read variance of normalised tile weights ``u``: the periphery's constant ``w_noise``^2
    plus the noise model's state-dependent cycle-to-cycle part (its ``cycle_variance``, where it
    has one); None where there is neither."""
    cycle = getattr(noise_model, "cycle_variance", None)
    state = cycle(u) if cycle is not None else None
    if w_noise == 0:
        return state
    return torch.full_like(u, w_noise**2) if state is None else state.add_(w_noise**2)


@dataclass(frozen=True)
class TileStack:
    """A layer's row tiles: weights [row_tiles, out, rows] in [-1, 1], digital output scales
    [row_tiles, out], the weights as int8 limbs (one per row tile) where the codes are int8, and
    the per-read weight variance (bf16, like ``weights``) where the device has read noise."""

    weights: Tensor
    scales: Tensor
    packed: tuple[Int8Weights, ...] | None = None
    read_var: Tensor | None = None

    @classmethod
    def build(cls, weights: Tensor, scales: Tensor, conv: Converters,
              read_var: Tensor | None = None) -> TileStack:
        packed = (tuple(Int8Weights.pack(w, 1.0 / conv.step) for w in weights) if conv.int8
                  else None)
        return cls(weights, scales, packed, None if read_var is None else read_var.bfloat16())


def dac(x: Tensor, row_tiles: int, conv: Converters, as_uint8: bool) -> tuple[Tensor, Tensor | None]:
    """DAC codes of ``x`` [N, row_tiles * rows] and the noise-management scales [N, row_tiles, 1].

    Codes come as uint8 [row_tiles, N, rows] (code + 128) with ``as_uint8``, else as float
    [N, row_tiles, rows]; in one compiled pass where it is built, else in torch operations."""
    clip = not (conv.managed and conv.inp_bound * conv.d_in >= 1.0)  # else |codes| <= bound already
    if epilogue.use_compiled:
        return epilogue.dac_codes(x.float().contiguous(), row_tiles, 1.0 / conv.d_in, conv.managed,
                                  conv.quant_in, conv.inp_bound if clip else None, as_uint8)
    xv = x.view(x.shape[0], row_tiles, -1)
    if conv.managed:
        scale = torch.maximum(xv.amax(-1, keepdim=True), xv.amin(-1, keepdim=True).neg_())
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        codes = xv * (1.0 / conv.d_in / scale)
    else:
        scale = None
        codes = xv * (1.0 / conv.d_in)
    if conv.quant_in:
        codes = codes.round_()
    if clip:
        codes = codes.clamp_(-conv.inp_bound, conv.inp_bound)
    if as_uint8:
        codes = torch.empty(codes.shape[1], codes.shape[0], codes.shape[2], dtype=torch.uint8).copy_(
            codes.add_(int8_product.ZERO_POINT).transpose(0, 1))
    return codes, scale


def _noise_std(codes: Tensor, n: int, stack: TileStack, r: int, conv: Converters) -> float | Tensor:
    """Row tile ``r``'s read-noise std in ADC steps: output noise, and weight read noise where the
    device has it (then one value per input and output, [n, out])."""
    if stack.read_var is None:
        return conv.out_noise / conv.step
    signed = codes[r].float().sub_(int8_product.ZERO_POINT) if stack.packed is not None else codes[:, r]
    var = torch.mm(signed.square().bfloat16(), stack.read_var[r].T).float()
    return var.add_(conv.out_noise**2).sqrt_().mul_(1.0 / conv.step)


def _row_tile(codes: Tensor, scale: Tensor | None, n: int, stack: TileStack, r: int,
              conv: Converters, out: Tensor | None, bias: Tensor | None) -> Tensor:
    """Row tile ``r`` on ``n`` inputs: product, read noise, ADC and digital scales, added onto
    ``out`` (the row tiles before it) in place, or onto the bias for the first row tile."""
    step = conv.step
    if stack.packed is not None:
        y, y_scale = stack.packed[r].product(codes[r]), 1.0
    else:
        y, y_scale = torch.mm(codes[:, r], stack.weights[r].T), 1.0 / step
    return epilogue.apply(
        y, y_scale, _noise_std(codes, n, stack, r, conv), conv.adc_step > 0, conv.out_bound / step,
        None if scale is None else scale[:, r].reshape(-1).contiguous(),
        stack.scales[r] * (conv.d_in * step), out if out is not None else bias,
        out if out is not None else y)


def analog_mvm(x: Tensor, stack: TileStack, bias: Tensor | None, conv: Converters) -> Tensor:
    """Periphery-managed product of ``x`` [N, row_tiles * rows] with the stacked tiles, plus bias.

    Returns [N, out]. Each row tile's product (in ADC steps) goes through one pass of
    :mod:`imc_sim.crossbar.epilogue` (read noise, ADC, scales), which adds it onto the sum of the
    row tiles before it: row tiles are summed digitally.
    """
    row_tiles = stack.weights.shape[0]
    codes, scale = dac(x, row_tiles, conv, stack.packed is not None)
    out = None
    for r in range(row_tiles):
        out = _row_tile(codes, scale, x.shape[0], stack, r, conv, out, bias)
    return out
