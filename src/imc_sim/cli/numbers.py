"""argparse types for numeric and list options: a value out of range is a one-line usage error
(exit 2) that names the option, before any model or data is loaded."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Collection


def _number(text: str, kind: type) -> int | float:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                         f"got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def int_at_least(minimum: int) -> Callable[[str], int]:
    """The type of an integer option whose smallest value is ``minimum``."""
    def at_least(text: str) -> int:
        value = _number(text, int)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value
    at_least.__name__ = f"integer >= {minimum}"  # argparse's fallback message names the type
    return at_least


positive_int = int_at_least(1)
"""An integer >= 1."""
non_negative_int = int_at_least(0)
"""An integer >= 0."""


def positive_float(text: str) -> float:
    """A finite number > 0."""
    value = _number(text, float)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value:g}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0."""
    value = _number(text, float)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value:g}")
    return value


def random_seed(text: str) -> int:
    """A random seed: an integer from 0 to 2**63 - 1 (what every torch generator takes)."""
    value = _number(text, int)
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"must be from 0 to 2**63 - 1, got {text}")
    return value


def learning_rate(text: str) -> float:
    """A learning rate: a number in (0, 1] (AdamW's steps are about the rate itself)."""
    value = positive_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be at most 1, got {value:g}")
    return value


def step_fraction(text: str) -> float:
    """A fraction of the training steps: a number in [0, 1)."""
    value = non_negative_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be below 1 (a fraction of the steps), got {value:g}")
    return value


def non_negative_floats(text: str) -> tuple[float, ...]:
    """Comma-separated finite numbers >= 0, at least one (``0,0.01,0.02``)."""
    items = [item.strip() for item in text.split(",")]
    if not all(items):
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}")
    return tuple(non_negative_float(item) for item in items)


def names(text: str) -> tuple[str, ...]:
    """Comma-separated names, at least one, none empty or repeated (``pcm,reram``)."""
    items = tuple(item.strip() for item in text.split(","))
    if not all(items):
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    repeated = sorted({item for item in items if items.count(item) > 1})
    if repeated:
        raise argparse.ArgumentTypeError(f"{repeated[0]!r} is named twice")
    return items


def names_of(known: Collection[str]) -> Callable[[str], tuple[str, ...]]:
    """The type of an option that names a subset of ``known``, comma-separated (:func:`names`)."""
    def subset(text: str) -> tuple[str, ...]:
        chosen = names(text)
        unknown = [name for name in chosen if name not in known]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown {unknown[0]!r} (known: {', '.join(known)})")
        return chosen
    subset.__name__ = "names"
    return subset


def file_stem(text: str) -> str:
    """A name that becomes part of a file name in the results folder: no path separator, not
    starting with a dot (so it cannot name a file elsewhere or a hidden one)."""
    if not text or "/" in text or "\\" in text or text.startswith("."):
        raise argparse.ArgumentTypeError(
            f"expected a name without '/' or '\\' that does not start with '.', got {text!r}")
    return text
