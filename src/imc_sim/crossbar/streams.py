"""A chip's random streams: one explicit generator per (layer, purpose, tile, drift time).

Every random number of a simulated chip comes from a :class:`Stream` derived from the chip's seed
and the keys that say what it is for, through a stable hash (BLAKE2b of the keys' ``repr``, never
Python's salted ``hash``)::

    seed(keys) = first 63 bits of BLAKE2b(repr((chip seed, layer, purpose, tile, time, draw, chunk)))

so a draw depends only on the chip's seed and on what it is for: not on the order in which layers
are programmed or drift times visited, not on which other layers or models are deployed beside it,
not on the thread count. Purposes used by the engine: ``program``, ``drift-coefficients``,
``faults`` (time key ``"devices"`` or ``"columns"``), ``drift-read`` (at a time),
``compensation`` (the drift-compensation read-out, at a time or ``"baseline"``) and ``read`` (the
per-MVM noise of the forward, at a time).

A stream counts its draws: the n-th draw of a stream is the same whatever happened elsewhere. A
fill larger than :data:`CHUNK` elements is cut into chunks of :data:`CHUNK`, each from its own
derived generator, so CPU fills can run on several threads with results independent of their
number. The devices' normals (:meth:`ChipStreams.tile_normals`: programming, drift, faults) come
instead from a counter-based generator keyed by the seed of their stream's first draw
(:mod:`~imc_sim.crossbar.philox`), the same numbers on every torch device and thread count.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable

import torch
from torch import Tensor

from imc_sim.crossbar import philox
from imc_sim.threads import fill_normal_chunks

CHUNK = 1 << 20  # elements per independently seeded chunk of a large fill
_SEED_MASK = (1 << 63) - 1


def stable_seed(*keys: Hashable) -> int:
    """A 63-bit seed from ``keys`` (numbers, strings, None, tuples of them), stable across runs."""
    digest = hashlib.blake2b(repr(keys).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & _SEED_MASK


def generator(device: torch.device | str, seed: int) -> torch.Generator:
    """A fresh ``torch.Generator`` on ``device`` seeded with ``seed``."""
    return torch.Generator(device=device).manual_seed(seed)


class Stream:
    """The random numbers for one purpose of one tile (or layer) of one chip, on one device.

    Each call (:meth:`generator`, :meth:`normal`) is one draw; the n-th draw is seeded from the
    stream's keys and n alone."""

    def __init__(self, keys: tuple[Hashable, ...], device: torch.device | str):
        self.keys, self.device, self.draws = keys, torch.device(device), 0

    def _next(self) -> tuple[Hashable, ...]:
        keys = (*self.keys, self.draws)
        self.draws += 1
        return keys

    def generator(self) -> torch.Generator:
        """A generator for the next draw (e.g. the compiled periphery pass's key)."""
        return generator(self.device, stable_seed(*self._next()))

    def normal(self, shape: tuple[int, ...]) -> Tensor:
        """Standard normals of ``shape`` on the stream's device (one draw)."""
        return self.fill_(torch.empty(shape, device=self.device))

    def fill_(self, out: Tensor) -> Tensor:
        """Fill contiguous ``out`` (on the stream's device) with standard normals (one draw);
        over :data:`CHUNK` elements in chunks of their own generators (on CPU, over threads)."""
        keys = self._next()
        flat = out.view(-1)
        if flat.numel() <= CHUNK:
            flat.normal_(generator=generator(self.device, stable_seed(*keys)))
            return out
        fill_normal_chunks(flat, CHUNK, lambda k: generator(self.device, stable_seed(*keys, k)))
        return out


class ChipStreams:
    """The streams of one chip, from its ``seed`` (see the module docstring)."""

    def __init__(self, seed: int):
        self.seed = int(seed)

    def stream(self, layer: str, purpose: str, device: torch.device | str, tile: int | None = None,
               time: float | str | None = None) -> Stream:
        """The stream of ``purpose`` for ``layer`` (and ``tile``, drift ``time``) on ``device``."""
        if time is not None and not isinstance(time, str):
            time = float(time)  # 1, 1.0, numpy's 1 and tensor(1.) name the same time
        return Stream((self.seed, layer, purpose, tile, time), device)

    def tile_normals(self, layer: str, purpose: str, tiles: range, shape: tuple[int, ...],
                     device: torch.device | str, time: float | str | None = None) -> Tensor:
        """Standard normals [len(tiles), *shape] for the devices of ``tiles``, tile i's from the
        counter-based generator (:mod:`~imc_sim.crossbar.philox`) keyed by its stream's first draw:
        the same numbers on every torch device, with or without the compiled pass."""
        seeds = self.tile_seeds(layer, purpose, tiles, time)
        return philox.tile_normals(torch.empty(len(tiles), *shape, device=device), seeds)

    def tile_seeds(self, layer: str, purpose: str, tiles: range,
                   time: float | str | None = None) -> list[int]:
        """The keys of :meth:`tile_normals`' generator for ``tiles``: each tile's stream's first draw."""
        return [stable_seed(*self.stream(layer, purpose, "cpu", i, time).keys, 0) for i in tiles]

    def __repr__(self) -> str:
        return f"ChipStreams(seed={self.seed})"
