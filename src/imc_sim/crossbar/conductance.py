"""Weights to device pairs and back, per tile, as aihwkit's ``SinglePairConductanceConverter``.

For the normalised weights u of one tile (any leading tile axes, the tile's [cols, rows] last):

    ratio = (g_max - g_min) / max(max |u| over the tile, 1e-7)
    g+    = clamp(u ratio, 0, g_max) + g_min,      g- = clamp(-u ratio, 0, g_max) + g_min
    u     = ((g+ - g_min) - (g- - g_min)) / ratio  (back)

The pair sits on a new axis just before the tile's [cols, rows]: [..., 2, cols, rows].
"""

from __future__ import annotations

import torch
from torch import Tensor

ZERO_CLIP = 1e-7  # aihwkit's floor on max |u| (an all-zero tile)


def pair_ratio(u: Tensor, g_max: float, g_min: float) -> Tensor:
    """uS per weight unit of each tile, [..., 1, 1] for u [..., cols, rows]."""
    abs_max = u.abs().amax(dim=(-2, -1), keepdim=True).clamp(min=ZERO_CLIP)
    return (g_max - g_min) / abs_max


def to_pair(u: Tensor, ratio: Tensor, g_max: float, g_min: float) -> Tensor:
    """Target conductances (g+, g-) of weights ``u``: [..., 2, cols, rows] in uS."""
    scaled = u * ratio
    return torch.stack([scaled.clamp(0.0, g_max) + g_min, scaled.neg().clamp(0.0, g_max) + g_min],
                       dim=-3)


def from_pair(g: Tensor, ratio: Tensor, g_min: float) -> Tensor:
    """Weights of conductance pairs ``g`` [..., 2, cols, rows]: [..., cols, rows]."""
    return ((g.select(-3, 0) - g_min) - (g.select(-3, 1) - g_min)) / ratio
