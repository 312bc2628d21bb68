"""Device faults of one chip (a profile's ``faults:``), drawn per tile at programming.

Every device is stuck at g_min with probability ``stuck_low``, at g_max with probability
``stuck_high`` (never both), whatever its target, and stays there through drift; every tile column
is dead (reads 0) with probability ``dead_columns``. The draws come from the chip's ``faults``
stream of each tile (time key ``"devices"`` and ``"columns"``): one standard normal z per device
or column, thresholded at the normal quantiles, so

    stuck low  <=>  z < Phi^-1(stuck_low)        stuck high  <=>  z > Phi^-1(1 - stuck_high)
    dead       <=>  z < Phi^-1(dead_columns)

and a fraction of 0 (quantile -inf) marks nothing, of 1 (quantile +inf) everything.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import torch
from torch import Tensor

from imc_sim.crossbar.streams import ChipStreams
from imc_sim.devices.profile import Faults

OK, LOW, HIGH = 0, 1, 2  # the codes of :func:`stuck_devices`


def quantile(p: float) -> float:
    """Phi^-1(p), the standard normal's quantile, -inf at 0 and +inf at 1."""
    if p <= 0.0:
        return -math.inf
    if p >= 1.0:
        return math.inf
    return NormalDist().inv_cdf(p)


def stuck_devices(faults: Faults, streams: ChipStreams, layer: str, tiles: range,
                  shape: tuple[int, ...], device: torch.device) -> Tensor:
    """The stuck state of every device of ``tiles`` ([len(tiles), *shape], int8: OK, LOW, HIGH)."""
    z = streams.tile_normals(layer, "faults", tiles, shape, device, time="devices")
    low = z < quantile(faults.stuck_low)
    high = z > quantile(1.0 - faults.stuck_high)
    return low.to(torch.int8) + HIGH * high.to(torch.int8)


def live_columns(faults: Faults, streams: ChipStreams, layer: str, tiles: range, cols: int,
                 device: torch.device) -> Tensor:
    """1 for a working column, 0 for a dead one: [len(tiles), cols, 1] (float, a weight mask)."""
    z = streams.tile_normals(layer, "faults", tiles, (cols,), device, time="columns")
    return (z >= quantile(faults.dead_columns)).float().unsqueeze(-1)


def pin(g: Tensor, stuck: Tensor | None, g_min: float, g_max: float) -> Tensor:
    """Conductances ``g`` with the stuck devices at g_min (LOW) or g_max (HIGH)."""
    if stuck is None:
        return g
    g = torch.where(stuck == LOW, torch.full_like(g, g_min), g)
    return torch.where(stuck == HIGH, torch.full_like(g, g_max), g)
