"""Spreading CPU work over the threads torch is allowed (``torch.get_num_threads()``).

Normal fills (:mod:`imc_sim.crossbar.streams`, StochGRASP's training noise in
:mod:`imc_sim.peft.stochgrasp.noise`) are cut into pieces whose results do not depend on how they
are split; the pieces run on the calling thread and a small pool, whose threads work while the
GIL is released (inside torch's fill). The compiled passes (:mod:`imc_sim.crossbar.epilogue`)
split their rows over torch's own OpenMP threads instead (``_epilogue.c``).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch


@functools.cache
def _pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(threads, thread_name_prefix="imc-sim")


os.register_at_fork(after_in_child=_pool.cache_clear)  # a forked child has none of the pool's threads


def run_all(tasks: list[Callable[[], object]]) -> None:
    """Run ``tasks``, spread over up to ``torch.get_num_threads()`` threads (the calling thread
    takes the first share)."""
    threads = min(torch.get_num_threads(), len(tasks))
    if threads < 2:
        for task in tasks:
            task()
        return
    shares = [tasks[k::threads] for k in range(threads)]

    def run_share(share: list[Callable[[], object]]) -> None:
        for task in share:
            task()

    futures = [_pool(threads - 1).submit(run_share, share) for share in shares[1:]]
    run_share(shares[0])
    for future in futures:
        future.result()


def fill_normal_chunks(flat: torch.Tensor, chunk: int,
                       generator_of: Callable[[int], torch.Generator]) -> None:
    """Fill the 1-D ``flat`` with standard normals, its k-th piece of ``chunk`` elements from
    ``generator_of(k)``: on the CPU the pieces spread over threads (torch's normal fill is serial),
    elsewhere one after another; the numbers do not depend on the thread count."""
    fills = [functools.partial(piece.normal_, generator=generator_of(k))
             for k, piece in enumerate(flat.split(chunk))]
    if flat.device.type == "cpu":
        run_all(fills)
    else:
        for fill in fills:
            fill()
