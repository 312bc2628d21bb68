"""A layer's tile grid: the weight [out, in] cut into ``row_tiles`` x ``col_tiles`` tiles.

Tile (r, c) holds inputs r * rows .. (r + 1) * rows - 1 and outputs c * cols .. (c + 1) * cols - 1;
with the ``fixed`` split the tiles are ``tile_rows`` x ``tile_cols`` and the last row and column
of tiles hold the remainder (768 -> 512 + 256); with the ``even`` split (aihwkit's
``TileModuleArray``) a layer takes as many tiles as the fixed split but of equal size, the
smallest that covers it (768 -> 384 + 384; 700 -> 350 + 350; 513 -> 257 + 257, one row padded).
Layer tensors come in two layouts:

    tiles  [row_tiles, col_tiles, cols, rows]   one block per tile, zero-padded to full size
                                                (per-tile laws: mapping, pair conversion, drift)
    stack  [row_tiles, out, rows]               the column tiles side by side per row tile
                                                (the forward's batched product)

Tile index i = r * col_tiles + c (the streams' tile key). The weight mapping's scale per tile column
(:func:`mapping_scales`) is computed on the tiles layout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


def _even(size: int, tile: int) -> int:
    """The size of ceil(size / tile) equal tiles that cover ``size``."""
    return math.ceil(size / math.ceil(size / tile))


@dataclass(frozen=True)
class TileGrid:
    """Tile cut of a layer with ``in_features`` inputs and ``out_features`` outputs."""

    in_features: int
    out_features: int
    rows: int  # inputs per tile (tile_rows, or fewer for a narrow layer)
    cols: int  # outputs per tile

    @classmethod
    def of(cls, in_features: int, out_features: int, tile_rows: int, tile_cols: int,
           split: str = "fixed") -> TileGrid:
        """The grid of a layer on tiles of at most ``tile_rows`` x ``tile_cols`` (``split``: fixed
        or even, see the module docstring)."""
        if split == "even":
            rows, cols = _even(in_features, tile_rows), _even(out_features, tile_cols)
            return cls(in_features, out_features, rows, cols)
        return cls(in_features, out_features, min(tile_rows, in_features), min(tile_cols, out_features))

    @property
    def row_tiles(self) -> int:
        return math.ceil(self.in_features / self.rows)

    @property
    def col_tiles(self) -> int:
        return math.ceil(self.out_features / self.cols)

    @property
    def n_tiles(self) -> int:
        return self.row_tiles * self.col_tiles

    @property
    def tile_shape(self) -> tuple[int, int]:
        return self.cols, self.rows

    @property
    def padded_in(self) -> int:
        return self.row_tiles * self.rows

    def cut(self, weight: Tensor) -> Tensor:
        """``weight`` [out, in] as tiles [row_tiles, col_tiles, cols, rows] (zero padding)."""
        pad_out = self.col_tiles * self.cols - self.out_features
        w = F.pad(weight, (0, self.padded_in - self.in_features, 0, pad_out))
        return w.view(self.col_tiles, self.cols, self.row_tiles, self.rows).permute(2, 0, 1, 3).contiguous()

    def stack(self, tiles: Tensor) -> Tensor:
        """Tiles [row_tiles, col_tiles, cols, rows] as the stack [row_tiles, out, rows]."""
        flat = tiles.reshape(self.row_tiles, self.col_tiles * self.cols, self.rows)
        return flat[:, : self.out_features].contiguous()

    def column_values(self, per_tile: Tensor) -> Tensor:
        """Per-tile values [row_tiles, col_tiles] (or per column [row_tiles, col_tiles, cols]) as
        one value per output of each row tile [row_tiles, out]."""
        if per_tile.dim() == 2:
            per_tile = per_tile.unsqueeze(-1).expand(-1, -1, self.cols)
        return per_tile.reshape(self.row_tiles, -1)[:, : self.out_features]

    def tile_sums(self, per_column: Tensor) -> Tensor:
        """Sums over each tile's columns of per-output values [row_tiles, out] -> [row_tiles, col_tiles]."""
        pad = self.col_tiles * self.cols - self.out_features
        return F.pad(per_column, (0, pad)).view(self.row_tiles, self.col_tiles, self.cols).sum(-1)

    @property
    def row_sizes(self) -> tuple[int, ...]:
        """Inputs each row tile really has (the last may hold fewer than ``rows``)."""
        return tuple(min(self.rows, self.in_features - r * self.rows) for r in range(self.row_tiles))

    def valid_rows(self, device: torch.device) -> Tensor:
        """:attr:`row_sizes` as a tensor [row_tiles] on ``device``."""
        return torch.tensor(self.row_sizes, device=device)

    def valid_cols(self, device: torch.device) -> Tensor:
        """Outputs each column tile really has: [col_tiles]."""
        starts = torch.arange(self.col_tiles, device=device) * self.cols
        return (self.out_features - starts).clamp(max=self.cols)

    def live_rows(self, device: torch.device) -> Tensor:
        """True on the tiles' real inputs, False on padding rows: bool [row_tiles, col_tiles, 1, rows]."""
        row_ok = torch.arange(self.rows, device=device) < self.valid_rows(device)[:, None]
        return row_ok[:, None, None, :].expand(self.row_tiles, self.col_tiles, 1, self.rows).contiguous()

    def live_cols(self, device: torch.device) -> Tensor:
        """True on the tiles' real outputs, False on padding columns: bool [row_tiles, col_tiles, cols, 1]."""
        col_ok = torch.arange(self.cols, device=device) < self.valid_cols(device)[:, None]
        return col_ok[None, :, :, None].expand(self.row_tiles, self.col_tiles, self.cols, 1).contiguous()


def mapping_scales(tiles: Tensor, weight_scaling: str) -> Tensor:
    """aihwkit's weight mapping with omega = 1: the scale per tile column [row_tiles, col_tiles,
    cols] (max |w| over the tile's rows, or over the tile), 1 where that is 0 or unscaled."""
    if weight_scaling == "none":
        return tiles.new_ones(tiles.shape[:-1])
    scale = tiles.abs().amax(dim=-1)
    if weight_scaling == "per-tile":
        scale = scale.amax(dim=-1, keepdim=True).expand_as(scale)
    return torch.where(scale == 0, torch.ones_like(scale), scale)
