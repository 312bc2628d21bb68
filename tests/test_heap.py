"""Freed memory kept in the process (imc_sim/heap.py): large tensors come from the heap and stay there.

Each case runs in its own interpreter, since the allocator's thresholds are set once per process.
The probe allocates ten 16 MB tensors (a training step's activations are of that size) and counts
the mappings glibc made for them (``mallinfo2().hblks``), the heap it keeps once they are freed
(``arena``), and the page faults of four steps that allocate and free 240 MB of 24 MB and 6 MB
tensors, after two warm-up steps. glibc's own page-fault count for such steps depends on where
small allocations land (0 % to 100 % of the pages in repeated runs here), so only the kept case's
count is asserted; the mappings show what it avoids.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

STEP_PAGES = 4 * 8 * (6_000_000 + 1_500_000) * 4 // 4096  # pages the four counted steps touch
TENSORS, TENSOR_MB = 10, 16

PROBE = f"""
import ctypes, resource, sys, torch
from imc_sim.heap import keep_freed_memory
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                               "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
kept = keep_freed_memory() if sys.argv[1] == "keep" else None
mapped = libc.mallinfo2().hblks
live = [torch.empty({TENSOR_MB} * 2**18) for _ in range({TENSORS})]
mapped = libc.mallinfo2().hblks - mapped
del live
heap_mb = libc.mallinfo2().arena // 2**20
def step():
    live = [torch.ones(n) for n in [6_000_000, 1_500_000] * 8]
    del live
step(); step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    step()
print(kept, mapped, heap_mb, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""

needs_glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt's thresholds are glibc's")


def probe(mode: str, **env: str) -> tuple[str, int, int, int]:
    """(what keep_freed_memory returned, mappings made for the tensors, heap MB kept after their
    free, page faults of the four steps)."""
    kept, mapped, heap_mb, faults = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True,
        env={**os.environ, **env}).stdout.split()
    return kept, int(mapped), int(heap_mb), int(faults)


@needs_glibc
def test_kept_memory_serves_large_tensors_from_the_heap_and_a_repeated_step_faults_in_no_pages() -> None:
    kept, mapped, heap_mb, faults = probe("keep")
    assert kept == "True"
    assert mapped == 0
    assert heap_mb >= TENSORS * TENSOR_MB
    assert faults < 0.05 * STEP_PAGES  # a step may grow the heap once more (0 to 1.3 % of its pages here)


@needs_glibc
def test_glibc_left_alone_maps_each_large_tensor_apart() -> None:
    """What the module is for: each mapping is unmapped on free and faulted in again on next use."""
    kept, mapped, heap_mb, _ = probe("plain")
    assert kept == "None"
    assert mapped >= TENSORS
    assert heap_mb < TENSORS * TENSOR_MB


@needs_glibc
def test_the_environment_can_leave_the_allocator_alone() -> None:
    kept, mapped, _, _ = probe("keep", IMC_SIM_KEEP_FREED_MEMORY="0")
    assert kept == "False"
    assert mapped >= TENSORS
