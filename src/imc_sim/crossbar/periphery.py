"""The crossbar MVM with its periphery, fused: DAC, analog product, output noise, ADC, rescaling.

It computes what aihwkit's ``AnalogMVM.matmul`` computes for a ONE_PASS tile with ``abs-max``
(or no) noise management and no bound management (``tests/test_periphery.py`` checks the two agree)
but in integer DAC codes, so that every elementwise step runs once, in place:

    s      = max_j |x_j|                         (noise management, per input row and row tile)
    c      = round(x / (s * d_in))               (DAC codes, d_in = 2 inp_bound / (2^b - 2))
    y      = (c W^T - D(c, W)) / q + sqrt((out_noise / d_in)^2 + sum_j c_j^2 V_j) / q xi
                                                 (in ADC steps q = d_out / d_in; xi ~ N(0, 1),
                                                  one per output and read)
    y      = clamp(round(y), +-out_bound / d_out)   (ADC)
    output = y * s * d_out * column_scale        (digital: mapping scales, drift compensation)

``W`` holds the tile weights in [-1, 1] (after the mapping), stacked per row tile as
``[row_tiles, out, rows]``; a layer's row tiles are summed digitally after their ADCs. ``V`` is the
per-read variance of each tile weight (cycle-to-cycle read noise, :func:`read_variance`), ``D`` the
IR drop of each output (:mod:`imc_sim.crossbar.ir_drop`; 0 where it is off, two more products of
the codes, int8 or fp32 like the tile's, where it is on): weight
fluctuations drawn afresh at every MVM add, for each input vector and output, a Gaussian of
variance sum_j c_j^2 V_j to the product, which is exactly their effect on that output; its
variance comes from one GEMM of the squared codes with ``V`` (int8 where the product is, the squares
dithered to one uint8 each: :mod:`imc_sim.crossbar.int8_product`; else bf16). Where the
DAC codes fit int8 (a DAC of at most 8 bits) the product c W^T runs in int8 arithmetic
(:mod:`imc_sim.crossbar.int8_product`, CPU only), else in fp32. Only the product's arithmetic
differs; every periphery step is the same. Every tensor is made on the input's device, and the
noise comes from the caller's :class:`~imc_sim.crossbar.streams.Stream`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from imc_sim.crossbar import epilogue, input_ranges, int8_product
from imc_sim.crossbar.int8_product import Int8Variance, Int8Weights
from imc_sim.crossbar.ir_drop import DropTerms, IrDrop, IrDropTiles
from imc_sim.crossbar.streams import Stream
from imc_sim.devices.family import DeviceFamily, ReadNoise
from imc_sim.devices.profile import Periphery
from imc_sim.errors import ImcSimError


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
    static: bool = False  # static input ranges: the forward takes one range per row tile

    @classmethod
    def from_periphery(cls, p: Periphery) -> Converters:
        d_in = 2 * p.inp_bound / (2**p.dac_bits - 2) if p.dac_bits else 1.0
        d_out = 2 * p.out_bound / (2**p.adc_bits - 2) if p.adc_bits else 0.0  # 0: no ADC rounding
        code_max = p.inp_bound / d_in
        return cls(
            perfect=p.perfect, managed=p.noise_management == "abs-max", d_in=d_in,
            quant_in=p.dac_bits is not None, out_noise=p.out_noise / d_in, adc_step=d_out / d_in,
            out_bound=p.out_bound / d_in, inp_bound=code_max, static=p.input_range == "static",
            int8=(p.dac_bits is not None and code_max <= int8_product.CODE_MAX
                  and int8_product.limbs() is not None),
        )

    @property
    def step(self) -> float:
        """One ADC step in product units (1 without an ADC)."""
        return self.adc_step if self.adc_step > 0 else 1.0


def read_noise(family: DeviceFamily, w_noise: float, devices: int = 1) -> ReadNoise | None:
    """The per-read variance law of normalised tile weights: the periphery's constant ``w_noise``^2
    plus the device family's state-dependent cycle-to-cycle part (divided by ``devices``: the mean
    of that many independent device pairs); None where there is neither."""
    law = family.read_noise()
    if law is not None and devices > 1:
        law = law.scaled(1.0 / devices)
    if w_noise == 0:
        return law
    return (law or ReadNoise()).plus(w_noise**2)


@dataclass(frozen=True)
class TileStack:
    """A layer's row tiles: weights [row_tiles, out, rows] in [-1, 1], digital output scales
    [row_tiles, out], the weights as int8 limbs (one per row tile) where the codes are int8 and
    the weights on the CPU, the per-read weight variance where the device has read noise (packed
    for the int8 product alongside the weights; else its law, the variance computed per row tile at
    each MVM in bf16 rather than kept: a weight-sized tensor less), the IR drop where the profile has it,
    and the inputs each row tile really has (``used``). A last row tile with fewer inputs than
    rows (768 on 512-row tiles: 512 + 256) multiplies only those: its padding rows see zero codes,
    which add nothing to the product, the read noise's variance or the IR drop's currents."""

    weights: Tensor
    scales: Tensor
    packed: tuple[Int8Weights, ...] | None = None
    read_var: ReadNoise | tuple[Int8Variance, ...] | None = None
    ir_drop: IrDropTiles | None = None
    used: tuple[int, ...] | None = None  # inputs per row tile; None: every row of every tile

    @classmethod
    def build(cls, weights: Tensor, scales: Tensor, conv: Converters, read_law: ReadNoise | None = None,
              ir_drop: IrDrop | None = None, used: tuple[int, ...] | None = None) -> TileStack:
        """The stack, packed for the int8 product where the codes fit it and the weights are on
        the CPU (oneDNN's int8 product is CPU-only); ``read_law``: the per-read variance of a
        weight (None: no read noise); ``used``: the inputs of each row tile."""
        rows = weights.shape[-1]
        if used is not None and all(n == rows for n in used):
            used = None
        n = used or (rows,) * weights.shape[0]
        packed = None
        if conv.int8 and weights.device.type == "cpu":
            packed = tuple(Int8Weights.pack(weights[r, :, : n[r]], 1.0 / conv.step) for r in range(len(n)))
        read_var: ReadNoise | tuple[Int8Variance, ...] | None = read_law
        if read_law is not None and packed is not None:
            read_var = tuple(Int8Variance.pack(read_law.variance(weights[r, :, : n[r]]))
                             for r in range(len(n)))
        drop = None if ir_drop is None else IrDropTiles.build(ir_drop, weights, None if packed is None else n)
        return cls(weights, scales, packed, read_var, drop, used)

    def inputs(self, codes: Tensor, r: int) -> Tensor:
        """Row tile ``r``'s codes [N, rows] cut to the inputs it really has."""
        if self.used is None or self.used[r] == codes.shape[1]:
            return codes
        return codes[:, : self.used[r]].contiguous()


def dac(x: Tensor, row_tiles: int, conv: Converters, as_uint8: bool,
        ranges: Tensor | None = None, rows: int | None = None) -> tuple[Tensor, Tensor | None]:
    """DAC codes of ``x`` [N, width] on ``row_tiles`` row tiles of ``rows`` inputs (None: width /
    row_tiles; where width < row_tiles * rows the last ones are padded with zero inputs) and the
    noise-management scales [N, row_tiles, 1]. With static input ranges ``ranges`` [row_tiles],
    each row tile's inputs are divided by its range first
    (:mod:`imc_sim.crossbar.input_ranges`), in the same multiplication as 1 / d_in.

    Codes come as uint8 [row_tiles, N, rows] (code + 128) with ``as_uint8``, else as float
    [N, row_tiles, rows]; in one compiled pass for CPU tensors where it is built, else in torch
    operations."""
    clip = not (conv.managed and conv.inp_bound * conv.d_in >= 1.0)  # else |codes| <= bound already
    factor = None if ranges is None else (1.0 / conv.d_in) / ranges.float()
    if epilogue.compiled_for(x):  # pads as it goes
        return epilogue.dac_codes(x.float().contiguous(), row_tiles, 1.0 / conv.d_in, conv.managed,
                                  conv.quant_in, conv.inp_bound if clip else None, as_uint8, factor, rows)
    if rows is not None and x.shape[1] < row_tiles * rows:
        x = F.pad(x, (0, row_tiles * rows - x.shape[1]))
    xv = x.view(x.shape[0], row_tiles, -1)
    if conv.managed:
        scale = torch.maximum(xv.amax(-1, keepdim=True), xv.amin(-1, keepdim=True).neg_())
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        codes = xv * (1.0 / conv.d_in / scale)
    else:
        scale = None
        codes = xv * (1.0 / conv.d_in) if factor is None else xv * factor[:, None]
    if conv.quant_in:
        codes = codes.round_()
    if clip:
        codes = codes.clamp_(-conv.inp_bound, conv.inp_bound)
    if as_uint8:
        codes = codes.add_(int8_product.ZERO_POINT).transpose(0, 1).to(torch.uint8).contiguous()
    return codes, scale


def row_tile_codes(codes: Tensor, scale: Tensor | None, r: int,
                   packed: bool) -> tuple[Tensor, Tensor | None]:
    """Row tile ``r``'s codes ([N, rows], uint8 where ``packed``) and scales ([N] or None)."""
    return (codes[r] if packed else codes[:, r],
            None if scale is None else scale[:, r].reshape(-1).contiguous())


def noise_std(var: Tensor | None, conv: Converters, row: Tensor | None = None) -> float | epilogue.ElementStd:
    """The read-noise std in ADC steps: output noise, plus the weight read noise's variance
    ``var`` of each product (in code-weight units, times ``row`` [N] per input row where given;
    None: no weight read noise)."""
    if var is None:
        return conv.out_noise / conv.step
    return epilogue.ElementStd(var, conv.out_noise**2, 1.0 / conv.step, row)


def _read_noise_var(codes: Tensor, stack: TileStack, r: int) -> tuple[Tensor | None, Tensor | None]:
    """Row tile ``r``'s weight read-noise variance of each product, sum_j c_j^2 V_j ([n, out]), as
    a tensor and a factor per input row (None: 1); (None, None) without read noise."""
    if stack.read_var is None:
        return None, None
    if isinstance(stack.read_var, tuple):
        return stack.read_var[r].variance(codes)
    var = stack.read_var.variance(stack.weights[r, :, : codes.shape[1]])
    return torch.mm(codes.square().bfloat16(), var.bfloat16().T).float(), None


def adc_and_scales(y: Tensor, y_scale: float, sd: float | epilogue.ElementStd, scale: Tensor | None,
                   conv: Converters, col_scale: Tensor, out: Tensor | None, bias: Tensor | None,
                   stream: Stream, drop: DropTerms | None = None) -> Tensor:
    """A row tile's product ``y`` (times ``y_scale``: ADC steps) after the array: IR ``drop``
    (None: none), read noise of std ``sd``, ADC, noise-management scales ``scale`` and digital
    ``col_scale``, added onto ``out`` in place, or onto the bias for the first row tile."""
    step = conv.step
    return epilogue.apply(
        y, y_scale, sd, conv.adc_step > 0, conv.out_bound / step, scale,
        col_scale * (conv.d_in * step), out if out is not None else bias,
        out if out is not None else y, stream, drop)


def row_tile_mvm(codes: Tensor, scale: Tensor | None, stack: TileStack, r: int, conv: Converters,
                 col_scale: Tensor, out: Tensor | None, bias: Tensor | None, stream: Stream) -> Tensor:
    """Row tile ``r`` on its codes [N, rows] (see :func:`row_tile_codes`): product less the IR
    drop, then :func:`adc_and_scales`; noise from ``stream``."""
    used = stack.inputs(codes, r)
    if stack.packed is not None:
        y, y_scale = stack.packed[r].product(used), 1.0
    else:
        y, y_scale = torch.mm(used, stack.weights[r, :, : used.shape[1]].T), 1.0 / conv.step
    # the drop in code-weight units, y in units of 1 / (y_scale q)
    drop = None if stack.ir_drop is None else stack.ir_drop.terms(used, r, 1.0 / (y_scale * conv.step))
    var, row = _read_noise_var(used, stack, r)
    sd = noise_std(var, conv, row)
    return adc_and_scales(y, y_scale, sd, scale, conv, col_scale, out, bias, stream, drop)


def analog_mvm(x: Tensor, stack: TileStack, bias: Tensor | None, conv: Converters,
               stream: Stream, ranges: Tensor | None = None) -> Tensor:
    """Periphery-managed product of ``x`` [N, in] with the stacked tiles, plus bias (in <=
    row_tiles * rows: the last row tiles' missing inputs are zero, padded in the DAC).
    With static input ranges, ``ranges`` [row_tiles] divide each row tile's inputs before the DAC
    (:mod:`imc_sim.crossbar.input_ranges`) and multiply its outputs back.

    Returns [N, out]. Each row tile's product (in ADC steps) goes through one pass of
    :mod:`imc_sim.crossbar.epilogue` (read noise from ``stream``, ADC, scales), which adds it onto
    the sum of the row tiles before it: row tiles are summed digitally.
    """
    row_tiles = stack.weights.shape[0]
    packed = stack.packed is not None
    if conv.static and ranges is None:
        raise ImcSimError(input_ranges.NO_RANGE)
    codes, scale = dac(x, row_tiles, conv, packed, ranges if conv.static else None, stack.weights.shape[-1])
    out = None
    for r in range(row_tiles):
        codes_r, scale_r = row_tile_codes(codes, scale, r, packed)
        col_scale = stack.scales[r] if not conv.static else stack.scales[r] * ranges[r]
        out = row_tile_mvm(codes_r, scale_r, stack, r, conv, col_scale, out, bias, stream)
    return out
