"""Where and in what precision a training step runs: the torch device and autocast.

``--torch-device`` (not ``--device``, the NVM profile): ``auto`` (CUDA where available, else the
CPU), ``cpu``, ``cuda`` or ``cuda:N``. ``--mixed-precision``: ``no``, ``bf16`` or ``fp16``
(autocast on the chosen device; fp16 scales the loss against gradient underflow). Parameters
stay in their own dtype (fp32) and so do their gradients.
"""

from __future__ import annotations

import re
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch

from imc_sim.errors import ImcSimError

PRECISIONS = {"no": None, "bf16": torch.bfloat16, "fp16": torch.float16}


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


@dataclass
class Precision:
    """Autocast dtype (None: full precision) on a device, and the loss scaler fp16 needs."""

    device: torch.device
    dtype: torch.dtype | None

    @classmethod
    def parse(cls, text: str, device: torch.device) -> Precision:
        if text not in PRECISIONS:
            raise ImcSimError(
                f"--mixed-precision must be one of {', '.join(PRECISIONS)}; got {text!r}")
        return cls(device, PRECISIONS[text])

    def autocast(self) -> AbstractContextManager:
        """The forward's autocast context (a disabled one for full precision)."""
        return torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None)

    def scaler(self) -> torch.amp.GradScaler:
        """A loss scaler, active for fp16 only."""
        return torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)


def out_of_memory_message(batch_size: int, max_length: int, device: str) -> str:
    """The one line for a CUDA out-of-memory during training: what to lower."""
    return (f"out of memory on --torch-device {device} at --batch-size {batch_size}, "
            f"--max-length {max_length}: "
            f"lower --batch-size or --max-length (or use --mixed-precision bf16)")
