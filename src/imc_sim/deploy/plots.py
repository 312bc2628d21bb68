"""PNG figure of the task metric versus drift time (one line per checkpoint)."""

from __future__ import annotations

import os
from collections.abc import Sequence

from imc_sim.deploy.results import CheckpointCurve
from imc_sim.figures import plt, save_figure
from imc_sim.metrics import metric_format


def plot_drift(curves: Sequence[CheckpointCurve], path: str | os.PathLike[str], title: str,
               metric_name: str) -> None:
    """One line per curve: mean +- std over seeds versus time (log axis; t = 0 drawn at 1 ms),
    digital level dashed; the axis label says what the bars are over how many chips."""
    scale = metric_format(metric_name).scale
    chips = sorted({len(p.metrics) for curve in curves for p in curve.points})
    bars = (f"bars: +-1 std over {'/'.join(map(str, chips))} chips" if chips != [1]
            else "one chip: no bars")
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for n, curve in enumerate(curves):
        color = f"C{n % 10}"
        t = [max(p.t_seconds, 1e-3) for p in curve.points]
        ax.errorbar(t, [scale * p.mean for p in curve.points], yerr=[scale * p.std for p in curve.points],
                    color=color, marker="o", capsize=3, label=curve.name)
        ax.axhline(scale * curve.digital_metric, color=color, linestyle="--", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("time after programming (s)")
    ax.set_ylabel(f"{metric_format(metric_name).axis_label(metric_name)}  (dashed: digital; {bars})")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)
