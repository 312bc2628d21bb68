"""Static input ranges (``periphery.input_range: static``): one DAC range per row tile, set once.

A chip's DAC has a fixed range per tile; it does not rescale each input vector by its abs-max.
The range r of each row tile (the inputs its tiles see) is calibrated once per deployment from
data, as aihwkit's ``calibrate_input_ranges`` with ``InputRangeCalibrationType.MOVING_QUANTILE``:

    r = mean over calibration batches b of  Q_p(|x_b|)

Q_p the ``input_percentile``-th percentile of |x| over the batch's input vectors that are not all
zero (aihwkit drops those), per row tile. During calibration the layer computes its digital
product (the deployment's target weights), so the ranges depend on the data alone: the same for
every chip seed and the same for the same data. The forward then divides each row tile's inputs by
r in the DAC (inputs beyond r clip at ``inp_bound``; :func:`imc_sim.crossbar.periphery.dac`) and
multiplies its outputs back by r with the tile's digital column scales.

Device-aware training on a static profile calibrates the same way, on training batches, and the
checkpoint keeps those ranges (:class:`StoredRanges`, with the tile geometry they are per row tile
of), so that a deployment on the same geometry uses the DAC ranges training saw.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from imc_sim.devices.profile import Periphery
from imc_sim.errors import ImcSimError

NO_RANGE = ("periphery.input_range = static needs calibration data: calibrate the deployment "
            "(Deployment.calibrate) on some batches before its forward")


def batch_range(x: Tensor, rows: int, percentile: float) -> Tensor:
    """Q_p(|x|) per row tile ([row_tiles]) for inputs ``x`` [N, in_features] on row tiles of
    ``rows`` inputs (the last may hold fewer); 0 for a tile that saw only zero vectors."""
    return torch.stack([_percentile(block, percentile) for block in x.split(rows, dim=1)])


def _percentile(block: Tensor, percentile: float) -> Tensor:
    """The k-th smallest |x| over the vectors of ``block`` [N, rows] that are not all zero,
    k = ceil(p / 100 n) for their n values (no interpolation). The all-zero vectors are sorted
    below every |x| (as -1) and skipped by the index, so no shape depends on the data and nothing
    waits for the device."""
    valid = (block != 0).any(-1, keepdim=True)
    values = torch.where(valid, block.abs(), torch.full_like(block, -1.0)).reshape(-1).sort().values
    n_valid = valid.sum() * block.shape[1]
    k = (n_valid * (percentile / 100.0)).ceil().clamp(min=1).long()
    index = (values.numel() - n_valid + k - 1).clamp(max=values.numel() - 1)
    return values.gather(0, index.view(1)).squeeze(0).clamp(min=0.0)


class Calibration:
    """Accumulates :func:`batch_range` over batches; :meth:`ranges` is their mean (each range > 0:
    a row tile that saw only zeros gets range 1)."""

    def __init__(self, rows: int, percentile: float):
        self.rows, self.percentile = rows, percentile
        self.sum: Tensor | None = None
        self.batches = 0

    def add(self, x: Tensor) -> None:
        r = batch_range(x.detach().float(), self.rows, self.percentile)
        self.sum = r if self.sum is None else self.sum + r
        self.batches += 1

    def ranges(self) -> Tensor:
        if self.sum is None:
            raise ImcSimError(NO_RANGE)
        mean = self.sum / self.batches
        return torch.where(mean > 0, mean, torch.ones_like(mean))


@dataclass(frozen=True)
class StoredRanges:
    """Static input ranges of named layers ([row_tiles] each, on the CPU), calibrated at the
    ``input_percentile`` on row tiles of ``tile_rows`` inputs cut with ``tile_split``: what a
    checkpoint keeps under ``input_ranges``."""

    tile_rows: int
    tile_split: str
    input_percentile: float
    layers: Mapping[str, Tensor]

    def fits(self, periphery: Periphery) -> bool:
        """Whether these ranges are the ones ``periphery`` would calibrate: the same row tiles
        and percentile."""
        return (periphery.tile_rows, periphery.tile_split, periphery.input_percentile) == (
            self.tile_rows, self.tile_split, self.input_percentile)

    def to_record(self) -> dict[str, Any]:
        """Plain types and CPU tensors (a checkpoint is read with ``weights_only=True``)."""
        return {"tile_rows": self.tile_rows, "tile_split": self.tile_split,
                "input_percentile": self.input_percentile,
                "layers": {name: r.detach().to("cpu", torch.float32) for name, r in self.layers.items()}}

    @classmethod
    def from_record(cls, raw: Mapping[str, Any] | None) -> StoredRanges | None:
        """The ranges of a checkpoint's ``input_ranges`` (None: a checkpoint without them)."""
        if raw is None:
            return None
        return cls(int(raw["tile_rows"]), str(raw["tile_split"]), float(raw["input_percentile"]),
                   dict(raw["layers"]))
