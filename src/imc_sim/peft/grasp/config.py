"""GRASP options (paper section III, eq. 1-2)."""

from __future__ import annotations

from dataclasses import dataclass

from imc_sim.errors import ImcSimError


@dataclass
class GraspConfig:
    """Grouped activation scale and shift, K groups per target layer.

    ``gamma_min``: the divisor used in the forward pass is gamma projected onto |gamma| >=
    gamma_min (sign kept, 0 counts as +); the projection passes gradients straight through, so a
    gamma that wanders into the dead zone can leave it again, and x / gamma never blows up.
    """

    k: int = 32
    targets: str = "all-linear"
    learn_scale: bool = True
    learn_shift: bool = True
    seed: int = 0
    gamma_min: float = 1e-2

    def __post_init__(self) -> None:
        if not (self.learn_scale or self.learn_shift):
            raise ImcSimError(
                "GRASP with neither scale nor shift learns nothing; drop --no-scale or --no-shift")
