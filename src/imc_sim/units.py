"""Drift times: ``1s 90s 1h 1d 1w 30d 1mo 1y 10y 3600`` (a bare number is seconds) and ranges ``1h..1y``."""

from __future__ import annotations

import math
import re
from typing import SupportsFloat

from imc_sim.errors import ImcSimError

SECONDS = {
    "s": 1.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 7 * 86400.0,
    "mo": 30 * 86400.0,
    "y": 365 * 86400.0,
}
MAX_SECONDS = 1e6 * SECONDS["y"]
"""The latest drift time asked for (a million years: later is a typo, and overflows the laws)."""
_TIME = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-z]*)\s*$")


def negative_time(text: str) -> ImcSimError:
    """The error for a drift time written with a minus sign."""
    return _negative(repr(text))


def _negative(shown: str) -> ImcSimError:
    return ImcSimError(f"drift time {shown} is negative; times count from the end of programming")


def parse_time(text: str) -> float:
    """Seconds in ``text``: a number with an optional unit (s, min, h, d, w, mo = 30 d, y = 365 d)."""
    if text.strip().startswith("-"):
        raise negative_time(text)
    match = _TIME.match(text)
    if not match:
        raise ImcSimError(f"cannot read drift time {text!r}; write e.g. 1s, 90s, 1h, 1d, 1w, 1mo, 1y, 3600")
    value, unit = float(match.group(1)), match.group(2) or "s"
    if unit not in SECONDS:
        raise ImcSimError(f"unknown time unit {unit!r} in {text!r}; known: {', '.join(SECONDS)}")
    return _checked(value * SECONDS[unit], repr(text))


def _checked(seconds: float, shown: str) -> float:
    if seconds < 0:
        raise _negative(shown)
    if not math.isfinite(seconds):
        raise ImcSimError(f"drift time {shown} is not finite")
    if seconds > MAX_SECONDS:
        raise ImcSimError(
            f"drift time {shown} is beyond {format_time(MAX_SECONDS)}, far past any device's data")
    return seconds


def seconds(time: str | SupportsFloat) -> float:
    """A drift time of the Python API in seconds: text as :func:`parse_time` reads it (``'1d'``), or
    a number of seconds (int, float, a numpy scalar, a one-element tensor), checked as text is."""
    if isinstance(time, str):
        return parse_time(time)
    try:
        value = None if isinstance(time, bool) else float(time)
    except (TypeError, ValueError):
        value = None
    if value is None:
        raise ImcSimError(f"drift time {time!r} is neither seconds nor a time such as '1d'")
    return _checked(value, f"{value:g} s")


def parse_times(texts: str | list[str]) -> list[float]:
    """Sorted distinct seconds from a list such as ``["1s", "1h"]`` or one string ``"1s,1h 1d"``."""
    items = texts if isinstance(texts, list) else [texts]
    parts = [p for item in items for p in re.split(r"[,\s]+", item) if p]
    if not parts:
        raise ImcSimError("no drift time given")
    return sorted({parse_time(p) for p in parts})


def parse_time_range(text: str) -> tuple[float, float]:
    """``"1h..1y"`` as (start, end) seconds; a single time gives (t, t)."""
    if ".." not in text:
        t = parse_time(text)
        return t, t
    start_text, _, end_text = text.partition("..")
    start, end = parse_time(start_text), parse_time(end_text)
    if start > end:
        raise ImcSimError(f"drift range {text!r} starts after it ends")
    return start, end


def format_time(seconds: float) -> str:
    """The shortest exact label: 3600 -> '1h', 86400 -> '1d', 31536000 -> '1y', 90 -> '90s'."""
    for unit in ("y", "mo", "w", "d", "h", "min"):
        value = seconds / SECONDS[unit]
        if value >= 1 and abs(value - round(value)) < 1e-9:
            return f"{round(value)}{unit}"
    return f"{seconds:g}s"
