"""Random grouping of D dimensions into K groups (paper eq. 2).

The K-vector is repeated m = ceil(D/K) times, truncated to D and permuted by a fixed random
permutation pi: dimension i takes entry (pi(i) mod K). Group sizes are therefore ceil(D/K) for the
first (D mod K) groups and floor(D/K) for the rest.
"""

from __future__ import annotations

import zlib

import torch

from imc_sim.errors import ImcSimError


def layer_seed(seed: int, name: str) -> int:
    """A per-layer seed, stable across runs and Python versions (CRC-32 of seed and name)."""
    return zlib.crc32(f"{seed}:{name}".encode())


def group_index(d: int, k: int, seed: int, what: str = "layer") -> torch.Tensor:
    """g: {0..D-1} -> {0..K-1} of eq. 2 as a LongTensor of length D.

    ``expanded = v[g]`` equals ``(v repeated ceil(D/K) times)[:D][pi]``.
    """
    if not 1 <= k <= d:
        raise ImcSimError(f"K must be in [1, {d}] for {what} (D={d}); got K={k}")
    perm = torch.randperm(d, generator=torch.Generator().manual_seed(seed))
    return perm % k


def group_sizes(index: torch.Tensor, k: int) -> torch.Tensor:
    """Number of dimensions in each of the K groups."""
    return torch.bincount(index, minlength=k)
