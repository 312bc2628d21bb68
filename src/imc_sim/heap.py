"""Keeping freed memory in the process (glibc), so that each step's large tensors cost no page faults.

torch takes CPU tensors from malloc. glibc gives memory back to the kernel when the free top of a
heap grows past ``M_TRIM_THRESHOLD``, and it serves a request above ``M_MMAP_THRESHOLD`` with a
mapping of its own, which it unmaps on free. Both thresholds adapt to the program's requests.
Memory that went back is zero-filled by the kernel, one 4 KiB page fault at a time, when it is next
touched. A training step or an analog evaluation allocates and frees the same large tensors every
time. On the 2-core machine of ``docs/results.md`` (session 17) a StochGRASP step of MiniLM faulted
in 60-140 MB per step, while a LoRA step faulted in none.

:func:`keep_freed_memory` fixes the trim threshold at its largest value and the mmap threshold at
glibc's largest (32 MiB). Freed memory then stays with the process for its next use, and the
process keeps its peak resident size; tensors above 32 MiB are still mapped one by one. The
command line, every Ray job (:mod:`imc_sim.jobs`), the benchmarks and the experiment scripts
call it at start. Importing the library leaves the allocator as it is, and
``IMC_SIM_KEEP_FREED_MEMORY=0`` in the environment leaves it as it is everywhere (memory handed
back at once, as glibc does by default).
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
MMAP_THRESHOLD_MAX = 32 * 2**20  # bytes: glibc's ceiling on 64-bit systems, half its heap size
TRIM_THRESHOLD_MAX = 2**31 - 1  # bytes: mallopt takes an int


@functools.cache
def keep_freed_memory() -> bool:
    """Set both thresholds, once per process; False (nothing changed) where the C library is not
    glibc or refuses a value, or the environment says ``IMC_SIM_KEEP_FREED_MEMORY=0``."""
    if os.environ.get("IMC_SIM_KEEP_FREED_MEMORY") == "0" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)
    # the mmap threshold first: setting either one stops glibc from adapting both
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) and bool(
        libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_MAX))
