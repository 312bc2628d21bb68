"""Fidelity, fit round trip: measurements drawn from a known profile, fitted back by
``imc-sim devices fit`` (:func:`~imc_sim.devices.fit.fit_measurements`).

Reads are drawn through the profile's own family (:func:`~imc_sim.devices.measurements.draw_measurements`,
the generator of tests/test_devices_fit.py): ``devices`` devices spread over target levels from
g_max / 8 to g_max, read once at 1 s, 1 min, 1 h, 1 d, 30 d and 1 y. The fitted parameters are
held against the truth of the family's laws, per level (x = g / g_max):

- sigma_p(g): the fitted programming-noise polynomial (what the written profile holds) against
  the family's program(g, z = 1) - g;
- nu mean and nu std per level against drift_coefficients(g, z = 0) and its change at z = 1;
- the 1/f read-noise scale against ``read_noise.scale``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from imc_sim.devices import build_family
from imc_sim.devices.fit import MIN_PER_LEVEL, fit_measurements
from imc_sim.devices.measurements import draw_measurements
from imc_sim.devices.profile import load_profile
from imc_sim.table import format_table

TIMES = (1.0, 60.0, 3600.0, 86400.0, 30 * 86400.0, 365 * 86400.0)  # s
LEVELS = 8
MIN_FIT_DEVICES = LEVELS * MIN_PER_LEVEL
"""The fewest devices a round trip draws: every level with as many as the fit takes."""
TARGET = 0.10  # the target: each parameter within 10 % of the truth


@dataclass(frozen=True)
class FittedParameter:
    """One fitted parameter of one truth profile (at level ``g`` uS; None: one for all levels)."""

    profile: str
    parameter: str
    g: float | None
    truth: float
    fitted: float

    @property
    def rel_error(self) -> float:
        return self.fitted / self.truth - 1.0


def round_trip(profile_name: str, devices: int = 10_000, seed: int = 1) -> list[FittedParameter]:
    """Draw ``devices`` devices of ``profile_name`` (pcm family), fit them back, compare."""
    profile = load_profile(profile_name)
    family = build_family(profile)
    g_max = profile.conductance["g_max"]
    targets = [g_max * (k + 1) / LEVELS for k in range(LEVELS)]
    m = draw_measurements(profile, targets, TIMES, devices // LEVELS, reads=1, seed=seed)
    fit = fit_measurements(m, profile.model, g_max=g_max, t0=profile.drift["t0"],
                           t_read=profile.read_noise["t_read"])
    g = torch.tensor([lv.g for lv in fit.levels], dtype=torch.float64)
    sigma = family.program(g, torch.ones_like(g)) - g
    nu_mean = family.drift_coefficients(g, torch.zeros_like(g))
    nu_std = family.drift_coefficients(g, torch.ones_like(g)) - nu_mean
    rows = []
    for k, level in enumerate(fit.levels):
        rows += [FittedParameter(profile.name, "sigma_p (uS)", level.g, float(sigma[k]),
                                 float(fit.sigma(level.g))),
                 FittedParameter(profile.name, "nu mean", level.g, float(nu_mean[k]), level.nu_mean),
                 FittedParameter(profile.name, "nu std", level.g, float(nu_std[k]), level.nu_std)]
    rows.append(FittedParameter(profile.name, "read-noise scale", None, profile.read_noise["scale"],
                                fit.read_scale))
    return rows


def format_fit_table(rows: Sequence[FittedParameter], markdown: bool = False) -> str:
    cells = [[r.profile, r.parameter, "all" if r.g is None else f"{r.g:.3g}", f"{r.truth:.4g}",
              f"{r.fitted:.4g}", f"{100 * r.rel_error:+.2f}", "yes" if abs(r.rel_error) <= TARGET else "NO"]
             for r in rows]
    return format_table(["truth", "parameter", "level g (uS)", "truth", "fitted", "rel. error %",
                         f"within {100 * TARGET:.0f}%"], cells, markdown)
