"""Field specifications of device profiles: a number, a list of numbers, a flag.

Each device family (``imc_sim.devices.families``) states its fields with these, per section of the
profile; ``imc_sim.devices.profile`` checks a YAML document against them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

INF = math.inf


@dataclass(frozen=True)
class Num:
    """A number field: default (None: required unless ``optional``) and allowed range."""

    default: float | None
    lo: float = -INF
    hi: float = INF
    open_lo: bool = False
    integer: bool = False
    optional: bool = False

    def describe(self) -> str:
        left = "(" if self.open_lo else "["
        kind = "an integer" if self.integer else "a number"
        return f"{kind} in {left}{self.lo:g}, {self.hi:g}]"


@dataclass(frozen=True)
class Nums:
    """A list of numbers, each at least ``lo``; ``ascending`` demands sorted values."""

    default: list[float] | None
    lo: float = -INF
    min_len: int = 1
    ascending: bool = False


@dataclass(frozen=True)
class Flag:
    default: bool


# A family's fields: section (conductance, programming, drift, read_noise) -> field -> spec; a
# nested dict is an optional sub-mapping of lists of equal length (pcm's drift.table).
Schema = dict[str, dict[str, Any]]
SECTIONS = ("conductance", "programming", "drift", "read_noise")

G_MAX = Num(None, 0.0, 1e4, open_lo=True)  # uS
SCALE = Num(1.0, 0.0, 100.0)
T0 = Num(20.0, 0.0, 1e6, open_lo=True)  # s
T_READ = Num(250e-9, 0.0, 1.0, open_lo=True)  # s
