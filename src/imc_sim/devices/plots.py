"""PNG portrait of a device profile: programming noise versus target, drift versus time."""

from __future__ import annotations

import os
from typing import Any

from imc_sim.figures import plt, save_figure


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
    save_figure(fig, path)
