"""The torch device a command runs on: ``--torch-device`` (not ``--device``, the NVM profile).

``auto`` (CUDA where available, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``; an absent device is
a one-line error. Shared by training, deployment and the benchmarks.
"""

from __future__ import annotations

import re

import torch

from imc_sim.errors import ImcSimError


def resolve_torch_device(text: str) -> torch.device:
    """The torch device ``text`` names, checked against this machine."""
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", text)
    if match is None:
        raise ImcSimError(f"--torch-device must be auto, cpu, cuda or cuda:N; got {text!r}")
    if not torch.cuda.is_available():
        raise ImcSimError(f"--torch-device {text}: no CUDA device is available here "
                          f"(torch {torch.__version__}); use --torch-device cpu or auto")
    count = torch.cuda.device_count()
    index = int(match.group(1)) if match.group(1) else torch.cuda.current_device()
    if index >= count:
        raise ImcSimError(f"--torch-device {text}: this machine has {count} CUDA device(s)")
    return torch.device("cuda", index)


def out_of_memory_message(batch_size: int, max_length: int, device: str) -> str:
    """The one line for running out of device memory in training: what to lower."""
    return (f"out of memory on --torch-device {device} at --batch-size {batch_size}, "
            f"--max-length {max_length}: "
            f"lower --batch-size or --max-length (or use --mixed-precision bf16)")


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """Every tensor of ``batch`` on ``device`` (non-blocking: overlapped where the source is
    pinned)."""
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}
