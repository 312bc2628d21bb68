"""PNG of a device fit: the measured levels beside the fitted law.

Panels: programming-noise std versus target, nu mean and std versus target, and g(t) of a few
devices (their mean reads as points, their fitted power law g_prog ((t + t0) / t0)^(-nu) as lines).
"""

from __future__ import annotations

import os

import numpy as np

from imc_sim.devices.fit import DeviceFit
from imc_sim.figures import plt, save_figure


def plot_fit(fit: DeviceFit, path: str | os.PathLike[str]) -> None:
    """Write the three panels of the module docstring to ``path``."""
    g = np.array([lv.g for lv in fit.levels])
    grid = np.linspace(0.0, fit.g_max, 101)
    fig, (prog, drift, curves) = plt.subplots(1, 3, figsize=(15, 4))
    prog.plot(g, [lv.sigma_p for lv in fit.levels], "o", label="data (per level)")
    prog.plot(grid, fit.sigma(grid), "-", label="fit (polynomial)")
    prog.set_xlabel("target conductance (uS)")
    prog.set_ylabel("programming-noise std (uS)")
    prog.set_title(f"{fit.family}: programming noise")
    drift.plot(g, [lv.nu_mean for lv in fit.levels], "o-", label="nu mean")
    drift.plot(g, [lv.nu_std for lv in fit.levels], "s--", label="nu std")
    drift.set_xlabel("target conductance (uS)")
    drift.set_ylabel("drift exponent nu")
    drift.set_title("drift exponent per level (the fitted table)")
    for target, times, reads, g_prog, nu in fit.examples:
        line = curves.plot(times, reads, "o", label=f"device at {target:.3g} uS")[0]
        t = np.logspace(np.log10(max(times.min(), 1e-3)), np.log10(times.max()), 50)
        curves.plot(t, g_prog * ((t + fit.t0) / fit.t0) ** (-nu), "-", color=line.get_color())
    curves.set_xscale("log")
    curves.set_xlabel("time after programming (s)")
    curves.set_ylabel("conductance (uS)")
    curves.set_title("g(t): reads (points), fitted power law (lines)")
    for ax in (prog, drift, curves):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    save_figure(fig, path)
