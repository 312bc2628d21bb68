"""Writing matplotlib figures as PNG, PDF or SVG, atomically (a failed run leaves no half-written
file)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from imc_sim.atomic import atomic_path  # noqa: E402
from imc_sim.errors import ImcSimError  # noqa: E402

FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg"}
"""A figure's file type follows its name's extension."""


def figure_format(path: str | os.PathLike[str], option: str = "--plot") -> str:
    """The image format of ``path`` (the value of ``option``), or a one-line error naming the
    extensions a figure can be written as."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ImcSimError(f"{option} {path}: a figure is written as {', '.join(FORMATS)}; "
                          f"got {suffix or 'no extension'}")
    return FORMATS[suffix]


def save_figure(fig: Any, path: str | os.PathLike[str]) -> None:
    """Write ``fig`` to ``path`` (PNG, PDF or SVG by its extension) and close it."""
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=figure_format(path), dpi=130, bbox_inches="tight")
    finally:
        plt.close(fig)
