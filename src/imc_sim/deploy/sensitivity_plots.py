"""PNG figures of the per-layer maps: the sensitivity heatmap and the placement curve."""

from __future__ import annotations

import os

from imc_sim.deploy.placement import PlacementResult
from imc_sim.deploy.sensitivity import SensitivityResult, cost_words, short_names
from imc_sim.figures import plt, save_figure


def plot_sensitivity(result: SensitivityResult, path: str | os.PathLike[str]) -> None:
    """One heatmap per mode: layers (rows) x drift times (columns), each cell the layer's cost in
    the metric's format (points of a percentage, or perplexity; mean over seeds; red: the layer
    makes the model worse, blue: better), written in the cell."""
    layers = [layer.name for layer in result.maps[0].layers]
    labels = short_names(layers)
    width = 1.6 + 0.9 * len(result.labels)
    fig, axes = plt.subplots(1, len(result.maps), figsize=(width * len(result.maps) + 1.5,
                                                           1.2 + 0.28 * len(layers)),
                             squeeze=False, layout="constrained")
    fmt = result.format
    for ax, m in zip(axes[0], result.maps, strict=True):
        cost = [[fmt.scale * c.mean for c in row] for row in result.costs(m.mode)]
        limit = max((abs(v) for row in cost for v in row), default=0.0) or 1.0  # 0 is white
        image = ax.imshow(cost, aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit)
        for i, row in enumerate(cost):
            for k, value in enumerate(row):
                ax.text(k, i, f"{value:.1f}", ha="center", va="center", fontsize=6)
        ax.set_xticks(range(len(result.labels)), result.labels)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set_xlabel("time after programming")
        ax.set_title(f"{m.mode}: {cost_words(m.mode, fmt)}", fontsize=9)
        fig.colorbar(image, ax=ax, label=f"{result.metric_name} cost (red: worse)")
    fig.suptitle(f"{result.method} on {result.device} ({result.seeds} seeds); digital "
                 f"{fmt(result.digital_metric)}", fontsize=10)
    save_figure(fig, path)


def plot_placement(result: PlacementResult, path: str | os.PathLike[str]) -> None:
    """The metric (mean +- std over seeds) against the fraction of weights on the chip, one line
    per drift time, the digital metric dashed."""
    s = result.sensitivity
    fmt = s.format
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    fractions = [100 * p.fraction_on_chip for p in result.curve]
    for k, label in enumerate(p.label for p in result.curve[0].points):
        points = [p.points[k] for p in result.curve]
        ax.errorbar(fractions, [fmt.scale * p.mean for p in points], yerr=[fmt.scale * p.std for p in points],
                    marker="o", capsize=3, label=label)
    ax.axhline(fmt.scale * s.digital_metric, color="k", linestyle="--", linewidth=0.8, label="digital")
    ax.set_xlabel("weights on the chip (% of the analog layers' weights)")
    ax.set_ylabel(fmt.axis_label(s.metric_name) + f", mean +- std over {s.seeds} chips")
    ax.set_title(f"{s.method} on {s.device}: costliest layers (one-analog at {result.ranked_at}) "
                 f"kept digital", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, title="drift")
    save_figure(fig, path)
