"""The crossbar MVM with its periphery, fused: DAC, analog product, output noise, ADC, rescaling.

It computes what aihwkit's ``AnalogMVM.matmul`` computes for a ONE_PASS tile with ``abs-max``
(or no) noise management and no bound management (``tests/test_periphery.py`` checks the two agree)
but in integer DAC codes, so that every elementwise step runs once, in place:

    s      = max_j |x_j|                         (noise management, per input row and tile)
    c      = round(x / (s * d_in))               (DAC codes, d_in = 2 inp_bound / (2^b - 2))
    y      = c W^T + (out_noise / d_in) xi       (xi ~ N(0, 1), one per output and read)
    y      = clamp(round(y / q) * q, +-out_bound / d_in)   (ADC, q = d_out / d_in)
    output = y * s * d_in * column_scale          (digital: mapping scales, drift compensation)

``W`` holds the tile weights in [-1, 1] (after the mapping), stacked per row tile as
``[row_tiles, out, rows]``; a layer's row tiles are summed digitally after their ADCs.
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch
from torch import Tensor

from imc_sim.analog.profile import Periphery

PARALLEL_FILL = 1 << 18  # elements from which a normal fill is split over threads


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

    @classmethod
    def from_periphery(cls, p: Periphery) -> Converters:
        d_in = 2 * p.inp_bound / (2**p.dac_bits - 2) if p.dac_bits else 1.0
        d_out = 2 * p.out_bound / (2**p.adc_bits - 2) if p.adc_bits else 0.0  # 0: no ADC rounding
        return cls(
            perfect=p.perfect, managed=p.noise_management == "abs-max", d_in=d_in,
            quant_in=p.dac_bits is not None, out_noise=p.out_noise / d_in, adc_step=d_out / d_in,
            out_bound=p.out_bound / d_in, inp_bound=p.inp_bound / d_in,
        )


def standard_normal(shape: tuple[int, ...]) -> Tensor:
    """N(0, 1) samples of ``shape`` from torch's global generator.

    torch fills normal tensors on one CPU thread; large fills are split over ``torch.get_num_threads()``
    generators seeded from the global generator (so a global seed still fixes every sample).
    """
    out = torch.empty(shape)
    threads = torch.get_num_threads()
    if threads < 2 or out.numel() < PARALLEL_FILL:
        return out.normal_()
    seeds = torch.randint(0, 2**62, (threads,)).tolist()
    chunks = out.view(-1).chunk(threads)
    futures = [_pool(threads).submit(c.normal_, generator=torch.Generator().manual_seed(seed))
               for c, seed in zip(chunks, seeds, strict=True)]
    for future in futures:
        future.result()
    return out


@functools.cache
def _pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(threads, thread_name_prefix="imc-sim-rng")


def _tile_mvm(x: Tensor, weight: Tensor, factor: Tensor, bias: Tensor | None, conv: Converters) -> Tensor:
    """One row tile: x [N, rows] (may be a strided column slice), weight [out, rows], factor [out]."""
    step = conv.adc_step if conv.adc_step > 0 else 1.0
    if conv.managed:
        low, high = torch.aminmax(x, dim=-1, keepdim=True)
        scale = torch.maximum(high, -low)
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        codes = x * (1.0 / (conv.d_in * scale))
    else:
        scale = None
        codes = x * (1.0 / conv.d_in)
    if conv.quant_in:
        codes = codes.round_()
    if not (conv.managed and conv.inp_bound * conv.d_in >= 1.0):  # else |codes| <= bound already
        codes = codes.clamp_(-conv.inp_bound, conv.inp_bound)
    if conv.out_noise > 0:
        y = torch.addmm(standard_normal((x.shape[0], weight.shape[0])), codes, weight.T,
                        beta=conv.out_noise / step, alpha=1.0 / step)
    else:
        y = torch.mm(codes, weight.T).mul_(1.0 / step)
    if conv.adc_step > 0:
        y.round_()
    y.clamp_(-conv.out_bound / step, conv.out_bound / step)
    if scale is not None:
        y.mul_(scale)
    y.mul_(factor * (conv.d_in * step))
    return y.add_(bias) if bias is not None else y


def analog_mvm(x: Tensor, weights: Tensor, column_scale: Tensor, bias: Tensor | None,
               conv: Converters) -> Tensor:
    """Periphery-managed product of ``x`` [N, row_tiles * rows] with the stacked tiles, plus bias.

    ``weights``: [row_tiles, out, rows]; ``column_scale``: [row_tiles, out]. Returns [N, out].
    The product comes out of the GEMM already in ADC steps, with the output noise added by the
    GEMM itself (``addmm``'s beta term), so only rounding, clipping and scaling remain; row tiles
    read strided slices of ``x`` (no copy) and are summed digitally.
    """
    rows = weights.shape[2]
    out = _tile_mvm(x[:, :rows], weights[0], column_scale[0], bias, conv)
    for r in range(1, weights.shape[0]):
        out += _tile_mvm(x[:, r * rows : (r + 1) * rows], weights[r], column_scale[r], None, conv)
    return out
