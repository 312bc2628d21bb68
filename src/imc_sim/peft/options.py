"""The values a method option may take: what ``--k``, ``--lam`` and the others check on the command
line, checked again for options given from Python (``TrainArgs(method_options={...})``)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from imc_sim.errors import ImcSimError
from imc_sim.peft.stochgrasp.config import auto_sigma_factor


@dataclass(frozen=True)
class OptionValue:
    """What one option's value must be: ``accepts(value)`` and its description for the error."""

    accepts: Callable[[Any], bool]
    description: str


def _count(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1


def _real(value: Any, positive: bool) -> bool:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        return False
    return value > 0 if positive else value >= 0


def _sigma_target(value: Any) -> bool:
    if isinstance(value, str):
        auto_sigma_factor(value)  # its own one-line error for a malformed 'auto*F'
        return True
    return _real(value, positive=False)


COUNT = OptionValue(_count, "an integer >= 1")
NON_NEGATIVE = OptionValue(lambda v: _real(v, positive=False), "a finite number >= 0")
SWITCH = OptionValue(lambda v: isinstance(v, bool), "True or False")
OPTION_VALUES: dict[str, OptionValue] = {
    "k": COUNT,
    "lora_r": COUNT,
    "targets": OptionValue(lambda v: isinstance(v, str) and bool(v.strip()),
                           "text: a preset or comma-separated module-name patterns"),
    "learn_scale": SWITCH,
    "learn_shift": SWITCH,
    "rows": OptionValue(lambda v: isinstance(v, str) and v in ("rows", "shared"), "'rows' or 'shared'"),
    "sampling": OptionValue(lambda v: isinstance(v, str) and v in ("outputs", "weights"),
                            "'outputs' or 'weights'"),
    "lam": NON_NEGATIVE,
    "sigma_target": OptionValue(_sigma_target, "a finite number >= 0, 'auto' or 'auto*F'"),
    "weight_noise": NON_NEGATIVE,
    "clip_sigma": OptionValue(lambda v: _real(v, positive=True), "a finite number > 0"),
}
"""Every method option's values (the method table says which options each method takes)."""


def checked_value(option: str, value: Any) -> Any:
    """``value`` of ``option`` as the config stores it (numpy numbers as Python's); a one-line
    :class:`ImcSimError` for a value the option cannot take."""
    rule = OPTION_VALUES.get(option)
    if rule is None:
        return value
    if not rule.accepts(value):
        raise ImcSimError(f"method option {option} = {value!r}: must be {rule.description}")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return value
    return int(value) if isinstance(value, numbers.Integral) else float(value)
