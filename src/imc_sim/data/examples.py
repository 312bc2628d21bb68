"""Raw examples of one split, whatever the source."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Examples:
    """One tuple of strings per example (one text, or two for sentence pairs), and labels: class
    indices (int) or, for regression, floats."""

    texts: list[tuple[str, ...]]
    labels: list[float]
