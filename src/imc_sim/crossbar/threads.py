"""Spreading elementwise work over the CPU threads torch is allowed (``torch.get_num_threads()``).

torch fills normal tensors on one thread, and the compiled periphery pass (``epilogue``) is called
per block of rows; both are split here over the calling thread and a small pool, whose threads
run while the GIL is released (inside torch's fill, inside the ctypes call).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import Tensor

PARALLEL_FILL = 1 << 18  # elements from which work is split over threads


@functools.cache
def _pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(threads, thread_name_prefix="imc-sim")


def _threads(elements: int) -> int:
    return torch.get_num_threads() if elements >= PARALLEL_FILL else 1


def standard_normal(shape: tuple[int, ...], std: float = 1.0) -> Tensor:
    """N(0, std^2) samples of ``shape`` from torch's global generator.

    Large fills are split over one generator per thread, each seeded from the global generator (so
    a global seed still fixes every sample)."""
    out = torch.empty(shape)
    threads = _threads(out.numel())
    if threads < 2:
        return out.normal_(0.0, std)
    seeds = torch.randint(0, 2**62, (threads,)).tolist()
    fills = [functools.partial(c.normal_, 0.0, std, generator=torch.Generator().manual_seed(s))
             for c, s in zip(out.view(-1).chunk(threads), seeds, strict=True)]
    _run_all(fills)
    return out


def _run_all(tasks: list[Callable[[], object]]) -> None:
    """Run ``tasks`` at once: the first on the calling thread, the others on the pool."""
    futures = [_pool(len(tasks) - 1).submit(task) for task in tasks[1:]]
    tasks[0]()
    for future in futures:
        future.result()


def split_rows(rows: int, run: Callable[[int, int], None], row_elements: int = 1) -> None:
    """Call ``run(first_row, count)`` on consecutive blocks of ``rows`` rows, one per thread."""
    threads = min(_threads(rows * row_elements), rows)
    if threads < 2:
        run(0, rows)
        return
    step = -(-rows // threads)
    _run_all([functools.partial(run, start, min(step, rows - start)) for start in range(0, rows, step)])
