"""The machine a benchmark ran on, as its JSON records it: the CPU, its cores, the instruction
sets that set the CPU's speed here and the limits put on them.

A realization's cost on the CPU depends on the instruction set more than on anything else:
oneDNN's int8 product (``crossbar/int8_product.py``) is about 4x the fp32 GEMM with VNNI
(``avx512_vnni`` or ``avx_vnni``) and about 2x without, and the compiled passes' Gaussian draws
take twice as long on 8 lanes as on 16 (``docs/results.md``, session 18). The environment
variables in :data:`ISA_LIMITS` hold oneDNN, torch and MKL below what the CPU has.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

ISA_LIMITS = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS")
VNNI_FLAGS = ("avx512_vnni", "avx_vnni")
CPUINFO = Path("/proc/cpuinfo")


def parse_cpuinfo(text: str) -> tuple[str, frozenset[str]]:
    """The first processor's model name and flags in ``text`` (Linux's /proc/cpuinfo); "unknown"
    and no flags where it has none."""
    model, flags = "unknown", frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model == "unknown":
            model = value.strip()
        elif key == "flags" and not flags:
            flags = frozenset(value.split())
    return model, flags


@dataclass(frozen=True)
class Host:
    """One machine as measured: CPU model, logical cores, torch's threads, torch's CPU kernel
    level (``DEFAULT``, ``AVX2``, ``AVX512``), whether the CPU has VNNI, the instruction-set limits
    set in the environment (name -> value), and the GPU where the run used one."""

    cpu: str
    cores: int
    threads: int
    torch_capability: str
    avx512: bool
    vnni: bool
    isa_limits: dict[str, str]
    gpu: str | None

    def describe(self) -> str:
        """One line: ``AMD EPYC, 2 cores (2 threads), AVX-512 with VNNI, torch AVX512``."""
        isa = ("AVX-512" if self.avx512 else "no AVX-512") + (" with VNNI" if self.vnni else ", no VNNI")
        limits = "".join(f", {k}={v}" for k, v in self.isa_limits.items())
        gpu = f", GPU {self.gpu}" if self.gpu else ""
        return (f"{self.cpu}, {self.cores} cores ({self.threads} threads), {isa}, torch "
                f"{self.torch_capability}{limits}{gpu}")

    def to_json(self) -> dict:
        return asdict(self)


def this_host(device: torch.device | None = None, cpuinfo: Path = CPUINFO) -> Host:
    """This machine (``device``: the torch device the run used, for the GPU's name)."""
    model, flags = parse_cpuinfo(cpuinfo.read_text()) if cpuinfo.is_file() else ("unknown", frozenset())
    gpu = torch.cuda.get_device_name(device) if device is not None and device.type == "cuda" else None
    return Host(cpu=model, cores=os.cpu_count() or 1, threads=torch.get_num_threads(),
                torch_capability=torch.backends.cpu.get_cpu_capability(), avx512="avx512f" in flags,
                vnni=any(f in flags for f in VNNI_FLAGS),
                isa_limits={k: os.environ[k] for k in ISA_LIMITS if k in os.environ}, gpu=gpu)
