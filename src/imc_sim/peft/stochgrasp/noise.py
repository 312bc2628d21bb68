"""A StochGRASP layer's training noise: one stream per layer, its n-th draw seeded from n alone.

Draw n of the stream with seed s fills its tensor in chunks of :data:`CHUNK` elements, chunk c
from its own generator seeded with ``layer_seed(s, "n:c")``, so that on the CPU the chunks fill
on several threads (torch's normal fill is serial) with the same numbers whatever their number.
"""

from __future__ import annotations

import torch

from imc_sim.peft.grouping import layer_seed, noise_generator
from imc_sim.threads import fill_normal_chunks

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
        fill_normal_chunks(out.view(-1), CHUNK,
                           lambda c: noise_generator(layer_seed(self.seed, f"{draw}:{c}"), self.device))
        return out
