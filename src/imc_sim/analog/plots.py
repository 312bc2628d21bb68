"""PNG figures: accuracy versus drift time, and a device profile's noise and drift portraits.

Figures are written atomically (a failed run leaves no half-written PNG).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from imc_sim.atomic import atomic_path  # noqa: E402


def _save(fig: Any, path: str | os.PathLike[str]) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=130, bbox_inches="tight")
    plt.close(fig)


def plot_drift(curves: Sequence[dict[str, Any]], path: str | os.PathLike[str], title: str,
               metric_name: str) -> None:
    """One line per curve: mean +- std over seeds versus time (log axis), digital level dashed.

    A curve is ``{"name", "digital_metric", "times": [{"t_seconds", "mean", "std"}, ...]}``.
    """
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for n, curve in enumerate(curves):
        color = f"C{n % 10}"
        t = [max(p["t_seconds"], 1e-3) for p in curve["times"]]
        ax.errorbar(t, [100 * p["mean"] for p in curve["times"]],
                    yerr=[100 * p["std"] for p in curve["times"]], color=color, marker="o",
                    capsize=3, label=curve["name"])
        ax.axhline(100 * curve["digital_metric"], color=color, linestyle="--", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("time after programming (s)")
    ax.set_ylabel(f"{metric_name} (%)  (dashed: digital)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)


def plot_device(name: str, sigma: dict[str, Any], drift: dict[str, Any],
                path: str | os.PathLike[str]) -> None:
    """Left: programming-noise std versus target; right: g(t)/g(0) versus time for a few states."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    left.plot(sigma["target"], sigma["sigma"], marker=".")
    left.set_xlabel(f"target ({sigma['unit']})")
    left.set_ylabel(f"programming-noise std ({sigma['unit']})")
    left.set_title(f"{name}: programming noise")
    left.grid(True, alpha=0.3)
    for level, values in drift["levels"].items():
        right.plot(drift["times"], values, marker="." if len(values) < 10 else None,
                   label=f"g = {level} g_max")
    right.set_xscale("log")
    right.set_xlabel("time after programming (s)")
    right.set_ylabel("mean g(t) / mean g(programmed)")
    right.set_title(f"{name}: drift")
    right.grid(True, which="both", alpha=0.3)
    right.legend(fontsize=8)
    _save(fig, path)
