"""PNG figures of the per-layer maps: the sensitivity heatmap and the placement curve."""

from __future__ import annotations

import os

from imc_sim.deploy.placement import PlacementResult
from imc_sim.deploy.sensitivity import SensitivityResult, short_names
from imc_sim.figures import plt, save_figure


def plot_sensitivity(result: SensitivityResult, path: str | os.PathLike[str]) -> None:
    """One heatmap per mode: layers (rows) x drift times (columns), each cell the layer's cost in
    metric points (mean over seeds; red: the layer costs, blue: it gains), written in the cell."""
    layers = [layer.name for layer in result.maps[0].layers]
    labels = short_names(layers)
    width = 1.6 + 0.9 * len(result.labels)
    fig, axes = plt.subplots(1, len(result.maps), figsize=(width * len(result.maps) + 1.5,
                                                           1.2 + 0.28 * len(layers)),
                             squeeze=False, layout="constrained")
    for ax, m in zip(axes[0], result.maps, strict=True):
        cost = [[100 * c.mean for c in row] for row in result.costs(m.mode)]
        limit = max((abs(v) for row in cost for v in row), default=0.0) or 1.0  # 0 is white
        image = ax.imshow(cost, aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit)
        for i, row in enumerate(cost):
            for k, value in enumerate(row):
                ax.text(k, i, f"{value:.1f}", ha="center", va="center", fontsize=6)
        ax.set_xticks(range(len(result.labels)), result.labels)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set_xlabel("time after programming")
        what = "lost, only this layer analog" if m.mode == "one-analog" else "won back, this layer digital"
        ax.set_title(f"{m.mode}: points {what}", fontsize=9)
        fig.colorbar(image, ax=ax, label=f"{result.metric_name} points")
    fig.suptitle(f"{result.method} on {result.device} ({result.seeds} seeds); digital "
                 f"{100 * result.digital_metric:.2f}", fontsize=10)
    save_figure(fig, path)


def plot_placement(result: PlacementResult, path: str | os.PathLike[str]) -> None:
    """The metric (mean +- std over seeds) against the fraction of weights on the chip, one line
    per drift time, the digital metric dashed."""
    s = result.sensitivity
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    fractions = [100 * p.fraction_on_chip for p in result.curve]
    for k, label in enumerate(p.label for p in result.curve[0].points):
        points = [p.points[k] for p in result.curve]
        ax.errorbar(fractions, [100 * p.mean for p in points], yerr=[100 * p.std for p in points],
                    marker="o", capsize=3, label=label)
    ax.axhline(100 * s.digital_metric, color="k", linestyle="--", linewidth=0.8, label="digital")
    ax.set_xlabel("weights on the chip (% of the analog layers' weights)")
    ax.set_ylabel(f"{s.metric_name} (%)")
    ax.set_title(f"{s.method} on {s.device}: costliest layers (one-analog at {result.ranked_at}) "
                 f"kept digital", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, title="drift")
    save_figure(fig, path)
