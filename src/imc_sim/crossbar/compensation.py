"""Drift compensation as aihwkit's ``GlobalDriftCompensation`` / ``PerColumnDriftCompensation``.

Each tile is read out with the one-hot inputs eye(rows) through its own noisy periphery (DAC,
product, output and read noise, ADC; no digital scales), right after programming (the baseline)
and after each drift:

    readout = max(mean |out|, 1e-4)      over the whole tile (global) or per column (per-column)
    alpha   = readout(baseline) / readout(now)

and the tile's outputs are multiplied by alpha in digital. All tiles of a layer are read at once,
one pass per row tile; padding rows and columns of ragged tiles are left out of the means.
"""

from __future__ import annotations

import torch
from torch import Tensor

from imc_sim.crossbar.grid import TileGrid
from imc_sim.crossbar.ir_drop import IrDrop
from imc_sim.crossbar.periphery import Converters, adc_and_scales, dac, noise_std
from imc_sim.crossbar.streams import ChipStreams

READOUT_FLOOR = 1e-4  # aihwkit's clamp on a read-out


def read_tiles(weights: Tensor, read_var: Tensor | None, conv: Converters, streams: ChipStreams,
               layer: str, time: float | str, ir_drop: IrDrop | None = None) -> Tensor:
    """Every tile's outputs for the inputs eye(rows): [row_tiles, rows, out], for the stacked
    ``weights`` [row_tiles, out, rows] and their per-read variance; row tile r's noise from the
    ``compensation`` stream of (``layer``, r, ``time``). Input k drives one row with one code c,
    so the product is c W^T, its read-noise variance c^2 V^T and its IR drop elementwise
    (:meth:`~imc_sim.crossbar.ir_drop.IrDrop.one_hot_drop`): no GEMM."""
    row_tiles, out_features, rows = weights.shape
    device = weights.device
    codes, scale = dac(torch.eye(rows, device=device), 1, conv, as_uint8=False)
    code = codes.sum(-1)  # [rows, 1]: each one-hot input's code
    scale = None if scale is None else scale.reshape(-1)
    ones = torch.ones(out_features, device=device)
    position = None if ir_drop is None else ir_drop.position(device)
    outputs = []
    for r in range(row_tiles):
        y = (weights.select(0, r).t() * code).contiguous()
        if ir_drop is not None:
            y.sub_(ir_drop.one_hot_drop(y, position))
        var = None if read_var is None else read_var.select(0, r).t() * code.square()
        outputs.append(adc_and_scales(y, 1.0 / conv.step, noise_std(var, conv), scale, conv, ones,
                                      None, None, streams.stream(layer, "compensation", device, r, time)))
    return torch.stack(outputs)


def readout(outputs: Tensor, grid: TileGrid, per_column: bool) -> Tensor:
    """The read-out value of each output of each row tile, [row_tiles, out]: the mean |out| over
    the tile's real inputs, per column or over the whole tile (then repeated per column)."""
    device = outputs.device
    valid_rows = grid.valid_rows(device)
    row_ok = torch.arange(grid.rows, device=device) < valid_rows[:, None]
    sums = (outputs.abs() * row_ok[:, :, None]).sum(1)  # [row_tiles, out]
    if per_column:
        means = sums / valid_rows[:, None]
    else:
        count = valid_rows[:, None] * grid.valid_cols(device)[None, :]
        means = grid.column_values(grid.tile_sums(sums) / count)
    return means.clamp(min=READOUT_FLOOR)
