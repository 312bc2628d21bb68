"""In what precision a training step runs: ``--mixed-precision`` ``no``, ``bf16`` or ``fp16``
(autocast on the run's torch device; fp16 scales the loss against gradient underflow). Parameters
stay in their own dtype (fp32) and so do their gradients.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch

from imc_sim.errors import ImcSimError

PRECISIONS = {"no": None, "bf16": torch.bfloat16, "fp16": torch.float16}


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
