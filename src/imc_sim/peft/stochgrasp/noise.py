"""A StochGRASP layer's training noise: one stream per layer, its n-th draw seeded from n alone.

Draw n of the stream with seed s fills its tensor in chunks of :data:`CHUNK` elements, chunk c
from its own generator seeded with ``layer_seed(s, "n:c")``, so that on the CPU the chunks fill
on several threads (torch's normal fill is serial) with the same numbers whatever their number.

On the CPU, where ``_noise.c`` was built, the output noise is drawn and added in one compiled
pass instead (:meth:`NoiseStream.add_scaled`: Philox under a 64-bit key of (s, n), rows split over
torch's OpenMP threads, the same numbers whatever their number), and the backward's group sums of
dL/dy eps in a second (:func:`group_dot`).
"""

from __future__ import annotations

import hashlib

import torch

from imc_sim.native import I64, PTR, U64, load_library, pointer, require_cpu
from imc_sim.peft.grouping import layer_seed, noise_generator
from imc_sim.threads import fill_normal_chunks

CHUNK = 1 << 20
"""Elements per independently seeded chunk of a draw."""

_LIB = load_library(__file__, "_noise", {"noise_add": [PTR, PTR, PTR, I64, I64, I64, PTR, U64],
                                         "group_dot": [PTR, PTR, PTR, I64, I64, I64, PTR]})
AVAILABLE = _LIB is not None
use_compiled = AVAILABLE  # tests switch it off to check the torch path against the compiled one


def compiled_for(*tensors: torch.Tensor) -> bool:
    """Whether the compiled passes run for ``tensors``: built, switched on, float32 on the CPU."""
    return use_compiled and all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors)


def group_dot(gy: torch.Tensor, eps: torch.Tensor, group: torch.Tensor, k: int) -> torch.Tensor:
    """Compiled only (check :func:`compiled_for`): [T, K] sums over the columns j of each group
    k = g(j) of gy * eps ([T, D] each)."""
    require_cpu(gy, eps, group)
    gy, eps, group = gy.contiguous(), eps.contiguous(), group.contiguous()
    n, m = gy.shape
    per = gy.new_empty(n, k)
    _LIB.group_dot(pointer(gy), pointer(eps), pointer(group), n, m, k, pointer(per))
    return per


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

    def add_scaled(self, out: torch.Tensor, std: torch.Tensor, group: torch.Tensor,
                   dtype: torch.dtype) -> torch.Tensor:
        """out[t, j] += std[t, g(j)] eps[t, j] in place, eps ([T, D] in ``dtype``, returned) the next
        draw; ``std`` is [T, K] and ``group`` holds g."""
        if not compiled_for(std) or dtype != torch.float32 or out.device.type != "cpu":
            eps = self.normal(out.shape, dtype)
            out.addcmul_(std.index_select(1, group), eps)
            return eps
        require_cpu(out, std, group)
        draw = self.draws
        self.draws += 1
        digest = hashlib.blake2b(f"{self.seed}:{draw}".encode(), digest_size=8).digest()
        std, group = std.contiguous(), group.contiguous()
        target = out if out.dtype == torch.float32 and out.is_contiguous() else out.new_zeros(out.shape,
                                                                                                dtype=dtype)
        eps = torch.empty_like(target)
        n, m = out.shape
        _LIB.noise_add(pointer(target), pointer(std), pointer(group), n, m, std.shape[1], pointer(eps),
                       int.from_bytes(digest, "little"))
        if target is not out:  # autocast's output: the same draw, added in its dtype
            out.add_(target)
        return eps
