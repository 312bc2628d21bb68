"""A fitted device (:class:`~imc_sim.devices.fit.DeviceFit`) as a profile YAML and as a printed
report: the family's own fields (pcm: ``programming.coeffs`` with ``coeffs_g_ref = g_max``, a
``drift.table`` of nu mean and std per target level, from 0 to g_max; state-independent: one nu
mean and std over all levels), validated by ``profile_from_dict`` before one atomic write.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from imc_sim.atomic import write_text_atomic
from imc_sim.devices.fit import MIN_PER_LEVEL, DeviceFit
from imc_sim.devices.profile import DeviceProfile, profile_from_dict
from imc_sim.table import format_table


def _round(value: float) -> float:
    return float(f"{value:.6g}")


def _drift_table(fit: DeviceFit) -> dict[str, list[float]]:
    """nu mean and std at each level, held constant out to 0 and to g_max (numpy.interp's ends)."""
    g = [lv.g for lv in fit.levels]
    mean = [lv.nu_mean for lv in fit.levels]
    std = [lv.nu_std for lv in fit.levels]
    if g[0] > 0:
        g, mean, std = [0.0, *g], [mean[0], *mean], [std[0], *std]
    if g[-1] < fit.g_max:
        g, mean, std = [*g, fit.g_max], [*mean, mean[-1]], [*std, std[-1]]
    return {"g": [_round(v) for v in g], "nu_mean": [_round(v) for v in mean],
            "nu_std": [_round(v) for v in std]}


def _pooled_nu(fit: DeviceFit) -> tuple[float, float]:
    """Mean and std of nu over every level (the within-level spreads plus the spread of means)."""
    n = np.array([lv.devices for lv in fit.levels], dtype=float)
    mean = np.array([lv.nu_mean for lv in fit.levels])
    var = np.array([lv.nu_std for lv in fit.levels]) ** 2
    overall = float((n * mean).sum() / n.sum())
    return overall, float(np.sqrt((n * (var + (mean - overall) ** 2)).sum() / n.sum()))


def fitted_profile_dict(fit: DeviceFit, name: str, source: str) -> dict[str, Any]:
    """The profile document of ``fit`` (family fields, default periphery, global compensation)."""
    coeffs = [_round(c) for c in fit.coeffs]
    if fit.family == "pcm":
        programming = {"coeffs": coeffs, "coeffs_g_ref": _round(fit.g_max), "scale": 1.0}
        drift: dict[str, Any] = {"t0": fit.t0, "scale": 1.0, "table": _drift_table(fit)}
    else:
        nu_mean, nu_std = _pooled_nu(fit)
        programming = {"coeffs": coeffs, "scale": 1.0}
        drift = {"nu_mean": _round(nu_mean), "nu_std": _round(nu_std), "t0": fit.t0, "scale": 1.0}
    return {
        "name": name,
        "description": (f"{fit.family} fitted by imc-sim devices fit to {fit.devices_used} devices "
                        f"at {len(fit.times)} times; periphery: defaults (edit to your chip)."),
        "source": f"measurements {source}",
        "model": fit.family,
        "conductance": {"g_max": _round(fit.g_max)},
        "programming": programming,
        "drift": drift,
        "read_noise": {"t_read": fit.t_read, "scale": _round(fit.read_scale)},
        "compensation": "global",
    }


def write_fitted_profile(fit: DeviceFit, path: str | os.PathLike[str], source: str) -> DeviceProfile:
    """Validate the fitted profile, then write it to ``path`` atomically (nothing on error)."""
    document = fitted_profile_dict(fit, Path(path).stem, source)
    profile = profile_from_dict(document, str(path))
    write_text_atomic(path, yaml.safe_dump(document, sort_keys=False, default_flow_style=None))
    return profile


def _r2_text(fit: DeviceFit, name: str) -> str:
    """The quality measure ``name`` as printed: its R^2, or why it has none."""
    why = fit.quality.undefined.get(name)
    return f"R^2 undefined ({why})" if why else f"R^2 = {getattr(fit.quality, name):.4f}"


def fit_report(fit: DeviceFit) -> str:
    """The fitted levels and the fit quality, as printed by ``imc-sim devices fit``."""
    rows = [[f"{lv.g:.3g}", lv.devices, f"{lv.sigma_p:.4g}", f"{float(fit.sigma(lv.g)):.4g}",
             f"{lv.nu_mean:.4g}", f"{lv.nu_std:.4g}"] for lv in fit.levels]
    q = fit.quality
    read = f"n/a ({q.undefined['read_rel']})" if q.read_rel is None else f"{q.read_rel:.1%}"
    times = ", ".join(f"{t:g}" for t in fit.times)
    lines = [
        f"{fit.family}: {fit.devices_used} devices fitted ({fit.devices_dropped} left out: a read of "
        f"0, a single time, or a level of < {MIN_PER_LEVEL} devices), times {times} s",
        format_table(["g_target (uS)", "devices", "sigma_p data (uS)", "sigma_p fit (uS)", "nu mean",
                      "nu std"], rows),
        "programming sigma_p = " + " + ".join(f"{c:.4g} x^{k}" for k, c in enumerate(fit.coeffs))
        + f" uS, x = g / {fit.g_max:g} uS",
        f"read noise scale = {fit.read_scale:.4g} (from {q.read_source})",
        "fit quality:",
        f"  programming std vs levels: {_r2_text(fit, 'sigma_r2')}, max relative error {q.sigma_max_rel:.1%}",
        f"  drift ln g(t)/g(t1) per level and time vs -nu_mean L: {_r2_text(fit, 'drift_r2')}",
        f"  read std per level and time: mean relative error {read}",
    ]
    if fit.copied_rows:
        lines.append(f"note: {fit.copied_rows} rows repeat an earlier row exactly (device, time and read); "
                     "if they are copies, the read noise above is too low: remove them and fit again")
    return "\n".join(lines)
