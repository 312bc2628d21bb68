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


def group_index(d: int, k: int, seed: int, what: str = "layer",
                device: torch.device | str | None = None) -> torch.Tensor:
    """g: {0..D-1} -> {0..K-1} of eq. 2 as a LongTensor of length D, on ``device``.

    ``expanded = v[g]`` equals ``(v repeated ceil(D/K) times)[:D][pi]``. The permutation is drawn
    on the CPU from ``seed`` and then moved, so every device gets the same groups.
    """
    if not 1 <= k <= d:
        raise ImcSimError(f"K must be in [1, {d}] for {what} (D={d}); got K={k}")
    perm = torch.randperm(d, generator=torch.Generator().manual_seed(seed))
    return (perm % k).to(device)


def expand(values: torch.Tensor, group: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``values`` with its K-sized dimension ``dim`` expanded to D by the group index (v[g]).
    The last dimension of a tensor of 3 or more dimensions is gathered on a 2-D view: torch's CPU
    index_select there is about 20x slower than on [rows, K] (measured, [32, 128, 64] -> 1536)."""
    if values.dim() > 2 and dim in (-1, values.dim() - 1):
        flat = values.reshape(-1, values.shape[-1]).index_select(1, group)
        return flat.view(*values.shape[:-1], group.numel())
    return values.index_select(dim, group)


def noise_generator(seed: int, device: torch.device) -> torch.Generator:
    """A generator on ``device`` seeded with ``seed``: the one stream a layer draws noise from."""
    return torch.Generator(device=device).manual_seed(seed)


def group_sizes(index: torch.Tensor, k: int) -> torch.Tensor:
    """Number of dimensions in each of the K groups, counted in ``index``."""
    return torch.bincount(index, minlength=k)


def eq2_group_sizes(d: int, k: int) -> torch.Tensor:
    """The group sizes eq. 2 gives without looking at the permutation: group g holds the
    dimensions whose permuted position is g mod K, ceil((D - g) / K) of them."""
    return torch.tensor([(d - g + k - 1) // k for g in range(k)])
