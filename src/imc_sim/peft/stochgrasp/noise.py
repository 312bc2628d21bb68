"""A StochGRASP layer's training noise: one stream per layer, its n-th draw seeded from n alone.

Draw n of the stream with seed s fills its tensor in chunks of :data:`CHUNK` elements, chunk c
from its own generator seeded with ``layer_seed(s, "n:c")``, so that on the CPU the chunks fill
on several threads (torch's normal fill is serial) with the same numbers whatever their number.
"""

from __future__ import annotations

import functools

import torch

from imc_sim.peft.grouping import layer_seed, noise_generator
from imc_sim.threads import run_all

CHUNK = 1 << 20
"""Elements per independently seeded chunk of a draw."""


class NoiseStream:
    """Standard normals for one layer on one device; each :meth:`normal` call is one draw."""

    def __init__(self, seed: int, device: torch.device) -> None:
        self.seed, self.device, self.draws = seed, torch.device(device), 0

    def normal(self, shape: tuple[int, ...] | torch.Size, dtype: torch.dtype) -> torch.Tensor:
        """N(0, 1) of ``shape`` and ``dtype`` on the stream's device (the next draw)."""
        out = torch.empty(shape, device=self.device, dtype=dtype)
        draw = self.draws
        self.draws += 1
        fills = [functools.partial(chunk.normal_, generator=noise_generator(
                     layer_seed(self.seed, f"{draw}:{c}"), self.device))
                 for c, chunk in enumerate(out.view(-1).split(CHUNK))]
        if self.device.type == "cpu":
            run_all(fills)
        else:
            for fill in fills:
                fill()
        return out
