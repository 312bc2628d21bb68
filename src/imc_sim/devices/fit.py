"""Fit a device family's profile to measured conductances (``imc-sim devices fit``).

With L(t) = ln((t + t0) / t0) the family's drift coordinate (t0 as measured, default 20 s),
the reads of each (device, time) averaged to g(t), and x = g_target / g_max:

1. drift, per device: ln g(t) = ln g_prog - nu L(t) (least squares over its times): nu and g_prog;
2. read noise: the reads' relative std at (device, time) is scale * shape(g_prog) * f(t), with
   f(t) = sqrt(ln((t + t0 + t_read) / (2 t_read))) and shape = q(g_prog) for pcm,
   1 / g_max for state-independent. The scale comes from the spread of repeated reads (pooled
   variance; refused where no repeated read differs, as with duplicated rows), or, with one read
   per (device, time), from the residuals of step 1 (>= 3 times);
   step 1 is then redone with ln g corrected for the bias of the log (eps^2 / 2n);
3. drift exponent per target level: nu mean = mean of nu; nu std^2 = var of nu - mean of each
   device's estimation variance (from the read noise);
4. programming noise per target level: g_prog = g(t1) ((t1 + t0) / t0)^nu at each device's first
   time t1; sigma_p^2 = var(g_prog - g_target) - mean (read noise at t1 / n reads + g^2 L1^2 var nu);
   then sigma_p = c0 + c1 x + c2 x^2 (weighted least squares; fewer terms with fewer levels).

Devices with a read of 0 (no logarithm) or a single time are left out, and said so. Target
levels are the distinct targets (up to 24), else 12 equal bins from 0 to g_max; a level needs
``MIN_PER_LEVEL`` devices.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from imc_sim.devices import schema
from imc_sim.devices.families import FAMILIES
from imc_sim.devices.families.pcm import one_over_f
from imc_sim.devices.measurements import Measurements
from imc_sim.documents import real_number
from imc_sim.errors import ImcSimError

MIN_DEVICES = 20
MIN_PER_LEVEL = 5
MAX_LEVELS = 24
BINS = 12
DEGREE = 2
T0, T_READ = schema.T0.default, schema.T_READ.default
"""s: the drift law's reference time and the read's duration (``--t0``, ``--t-read``), as a
profile's defaults."""


def pcm_shape(g: np.ndarray, g_max: float) -> np.ndarray:
    """pcm's relative read-noise std per unit scale: q = min(0.2, 0.0088 / max(1e-3, (g/g_max)^0.65))."""
    return np.minimum(0.2, 0.0088 / np.maximum(1e-3, (np.abs(g) / g_max) ** 0.65))


def flat_shape(g: np.ndarray, g_max: float) -> np.ndarray:
    """state-independent's relative read-noise std per unit scale (uS): 1 / g_max."""
    return np.full_like(g, 1.0 / g_max)


READ_SHAPES: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "pcm": pcm_shape, "state-independent": flat_shape}


@dataclass(frozen=True)
class Level:
    """One target level: its mean target (uS), device count, and the measured quantities."""

    g: float
    devices: int
    sigma_p: float  # uS, programming-noise std (read noise removed)
    nu_mean: float
    nu_std: float  # spread of nu (estimation noise removed)


@dataclass(frozen=True)
class Quality:
    """How well the fitted law describes the binned data."""

    sigma_r2: float  # R^2 of the polynomial against the levels' sigma_p
    sigma_max_rel: float  # largest |fit - data| / data over levels
    drift_r2: float  # R^2 of mean ln(g(t) / g(t1)) per (level, time) against -nu_mean (L - L1)
    read_rel: float | None  # mean |model - data| / data of the read std per (level, time); None
    read_source: str  # "repeated reads" or "residuals of the drift fit"
    undefined: dict[str, str]  # why a measure above is nan (R^2) or None (read_rel), by field name


@dataclass(frozen=True)
class DeviceFit:
    family: str
    g_max: float
    t0: float
    t_read: float
    coeffs: tuple[float, ...]  # uS, sigma_p = sum c_k x^k
    read_scale: float
    levels: tuple[Level, ...]
    quality: Quality
    devices_used: int
    devices_dropped: int
    times: tuple[float, ...]
    copied_rows: int  # rows equal to an earlier row in device, time and read (copies, or coarse reads)
    examples: tuple[tuple[float, np.ndarray, np.ndarray, float, float], ...] = field(repr=False)
    # (target, times, mean reads, g_prog, nu) of a few devices, for the plot

    def sigma(self, g: np.ndarray) -> np.ndarray:
        """The fitted programming-noise std (uS) at conductances ``g`` (uS)."""
        return np.polynomial.polynomial.polyval(np.asarray(g) / self.g_max, self.coeffs)


@dataclass
class _Grid:
    """Reads averaged per (device, time): dense (devices, times) arrays; count 0 = not read."""

    count: np.ndarray
    mean: np.ndarray
    var: np.ndarray  # within-(device, time) variance (ddof 1; 0 where count < 2 or the reads are equal)
    target: np.ndarray  # per device
    times: np.ndarray


def _grid(m: Measurements) -> _Grid:
    times, t_index = np.unique(m.time, return_inverse=True)
    d, n_t = m.n_devices, len(times)
    key = m.device * n_t + t_index
    count = np.bincount(key, minlength=d * n_t).reshape(d, n_t).astype(float)
    total = np.bincount(key, m.g_read, minlength=d * n_t).reshape(d, n_t)
    mean = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    least = np.full(d * n_t, np.inf)
    np.minimum.at(least, key, m.g_read)
    above = m.g_read - least[key]  # all exactly 0 where a (device, time)'s reads are equal
    mean_above = np.bincount(key, above, minlength=d * n_t) / np.maximum(count.ravel(), 1)
    square = np.bincount(key, (above - mean_above[key]) ** 2, minlength=d * n_t).reshape(d, n_t)
    var = np.divide(square, count - 1, out=np.zeros_like(square), where=count > 1)
    target = np.zeros(d)
    target[m.device] = m.g_target
    return _Grid(count, mean, var, target, times)


def _regress(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row least squares y = a + b x over the points with w = 1: (a, b, residual sum of squares)."""
    n = w.sum(1)
    mx = (w * x).sum(1) / n
    my = (w * y).sum(1) / n
    sxx = (w * (x - mx[:, None]) ** 2).sum(1)
    b = (w * (x - mx[:, None]) * (y - my[:, None])).sum(1) / sxx
    a = my - b * mx
    rss = (w * (y - a[:, None] - b[:, None] * x) ** 2).sum(1)
    return a, b, rss


def _levels(target: np.ndarray, g_max: float) -> np.ndarray:
    """Level index per device: its distinct target's, or its bin's of ``BINS`` from 0 to g_max."""
    distinct, index = np.unique(target, return_inverse=True)
    if len(distinct) > MAX_LEVELS:
        index = np.minimum((target / g_max * BINS).astype(int), BINS - 1)
    return index


def _copied_rows(m: Measurements) -> int:
    """How many rows repeat an earlier row exactly (device, time and read)."""
    rows = np.stack([m.device.astype(float), m.time, m.g_read], axis=1)
    return len(rows) - len(np.unique(rows, axis=0))


def _r2(data: np.ndarray, model: np.ndarray) -> float:
    total = ((data - data.mean()) ** 2).sum()
    return 1.0 - ((data - model) ** 2).sum() / total if total > 0 else float("nan")


def fit_measurements(m: Measurements, family: str, g_max: float | None = None,
                     t0: float = T0, t_read: float = T_READ) -> DeviceFit:
    """Fit ``family``'s law (a key of ``READ_SHAPES``) to ``m``; see the module docstring."""
    if family not in READ_SHAPES:
        raise ImcSimError(f"devices fit: family {family!r} cannot be fitted; supported: "
                          f"{', '.join(READ_SHAPES)}")
    for name, value, spec in (("t0", t0, schema.T0), ("t_read", t_read, schema.T_READ)):
        if real_number(value) is None or not spec.lo < value <= spec.hi:
            raise ImcSimError(f"devices fit: {name} = {value!r} s is out of range; allowed {spec.describe()} "
                              "(seconds)")
    grid = _grid(m)
    if len(grid.times) < 2:
        raise ImcSimError(f"measurements {m.source}: a single time point ({grid.times[0]:g} s); "
                          "the drift fit needs reads at two times or more")
    largest = float(grid.target.max())
    if g_max is not None and not g_max >= largest:
        raise ImcSimError(f"devices fit: --g-max {g_max:g} uS is below the largest target, {largest:g} uS")
    given, g_max = g_max is not None, float(g_max or largest)
    if g_max <= 0:
        raise ImcSimError(f"measurements {m.source}: every target is 0 uS; nothing to fit")
    limit = FAMILIES[family].schema["conductance"]["g_max"].hi
    if g_max > limit:
        what = "--g-max" if given else "the largest target"
        raise ImcSimError(f"devices fit: {what} {g_max:g} uS is above a {family} profile's g_max limit, "
                          f"{limit:g} uS (conductances are in uS)")
    shape = READ_SHAPES[family]
    f2 = np.array([one_over_f(t, t0, t_read) ** 2 for t in grid.times])
    x = np.broadcast_to(np.log((grid.times + t0) / t0), grid.mean.shape)
    read = grid.count > 0
    keep = (read.sum(1) >= 2) & ~np.any(read & (grid.mean <= 0), axis=1)
    levels = _levels(grid.target, g_max)
    counts = np.bincount(levels[keep], minlength=levels.max() + 1)
    keep &= counts[levels] >= MIN_PER_LEVEL
    if keep.sum() < MIN_DEVICES:
        raise ImcSimError(f"measurements {m.source}: too few devices to fit: {int(keep.sum())} with "
                          f"reads above 0 at two times or more, in levels of >= {MIN_PER_LEVEL} "
                          f"(need at least {MIN_DEVICES})")
    count, mean, var, target = grid.count[keep], grid.mean[keep], grid.var[keep], grid.target[keep]
    x, w, levels = x[keep], read[keep].astype(float), levels[keep]
    y = np.log(np.where(w > 0, mean, 1.0))
    a, b, rss = _regress(x, y, w)
    rel2 = shape(np.exp(a), g_max)[:, None] ** 2 * f2[None, :]  # (eps / scale)^2 per read
    read_scale, read_source = _read_scale(count, mean, var, rel2, x, w, rss, m.source)
    eps2 = read_scale**2 * rel2 / np.maximum(count, 1)  # variance of ln g(t), mean of the reads
    a, b, _ = _regress(x, y + eps2 / 2, w)
    nu, g_prog = -b, np.exp(a)
    lever = w * (x - ((w * x).sum(1) / w.sum(1))[:, None])
    nu_var = (lever**2 * eps2).sum(1) / (lever**2).sum(1) ** 2
    first = np.argmax(read[keep], axis=1)
    rows = np.arange(len(first))
    g_first = mean[rows, first] * np.exp(nu * x[rows, first])
    noise_first = g_first**2 * (eps2[rows, first] + x[rows, first] ** 2 * nu_var)
    fitted = [_level(k, target, g_first, noise_first, nu, nu_var, levels) for k in np.unique(levels)]
    coeffs = _polyfit(fitted, g_max)
    quality = _quality(fitted, coeffs, g_max, levels, y, x, w, count, mean, var, eps2, read_source)
    return DeviceFit(
        family=family, g_max=g_max, t0=t0, t_read=t_read, coeffs=coeffs, read_scale=read_scale,
        levels=tuple(fitted), quality=quality, devices_used=int(keep.sum()),
        devices_dropped=int((~keep).sum()), times=tuple(grid.times.tolist()), copied_rows=_copied_rows(m),
        examples=_examples(target, levels, grid.times, mean, w, g_prog, nu),
    )


def _read_scale(count: np.ndarray, mean: np.ndarray, var: np.ndarray, rel2: np.ndarray,
                x: np.ndarray, w: np.ndarray, rss: np.ndarray, source: str) -> tuple[float, str]:
    """Read-noise scale: pooled variance of repeated reads over the law's shape, or the drift
    fit's residuals over theirs (E rss = scale^2 sum (1 - h_ii) rel2 / n)."""
    dof = np.maximum(count - 1, 0)
    if dof.sum() > 0:
        ok = dof > 0
        if not var[ok].any():
            raise ImcSimError(f"measurements {source}: the repeated reads of each device at each time are "
                              "all equal (duplicated rows?); the read noise needs at least two different "
                              "reads of a device at the same time, or one read per (device, time) at three "
                              "times or more")
        ratio = var[ok] / (mean[ok] ** 2 * rel2[ok])
        return float(math.sqrt((dof[ok] * ratio).sum() / dof[ok].sum())), "repeated reads"
    n = w.sum(1)
    if np.all(n < 3):
        raise ImcSimError(f"measurements {source}: one read per (device, time) at two times; the read "
                          "noise needs repeated reads or reads at three times or more")
    mx = (w * x).sum(1) / n
    lever = (x - mx[:, None]) ** 2 / (w * (x - mx[:, None]) ** 2).sum(1)[:, None]
    expected = (w * (1 - 1 / n[:, None] - lever) * rel2 / np.maximum(count, 1)).sum()
    return float(math.sqrt(rss.sum() / expected)), "residuals of the drift fit"


def _level(k: int, target: np.ndarray, g_first: np.ndarray, noise_first: np.ndarray, nu: np.ndarray,
           nu_var: np.ndarray, levels: np.ndarray) -> Level:
    sel = levels == k
    spread = np.var(g_first[sel] - target[sel], ddof=1) - noise_first[sel].mean()
    nu_spread = np.var(nu[sel], ddof=1) - nu_var[sel].mean()
    return Level(g=float(target[sel].mean()), devices=int(sel.sum()),
                 sigma_p=float(math.sqrt(max(spread, 0.0))), nu_mean=float(nu[sel].mean()),
                 nu_std=float(math.sqrt(max(nu_spread, 0.0))))


def _polyfit(levels: list[Level], g_max: float) -> tuple[float, ...]:
    """sigma_p = sum c_k x^k by least squares weighted by sqrt(n) / sigma (relative errors)."""
    xs = np.array([lv.g / g_max for lv in levels])
    sig = np.array([lv.sigma_p for lv in levels])
    n = np.array([lv.devices for lv in levels])
    degree = min(DEGREE, len(levels) - 1)
    weights = np.sqrt(n) / np.maximum(sig, 1e-6 * max(sig.max(), 1e-12))
    return tuple(float(c) for c in np.polynomial.polynomial.polyfit(xs, sig, degree, w=weights))


def _quality(levels: list[Level], coeffs: tuple[float, ...], g_max: float, index: np.ndarray,
             y: np.ndarray, x: np.ndarray, w: np.ndarray, count: np.ndarray, mean: np.ndarray,
             var: np.ndarray, eps2: np.ndarray, read_source: str) -> Quality:
    sig = np.array([lv.sigma_p for lv in levels])
    model = np.polynomial.polynomial.polyval(np.array([lv.g for lv in levels]) / g_max, coeffs)
    sigma_rel = float(np.max(np.abs(model - sig) / np.maximum(sig, 1e-12)))
    data, predicted, read_data, read_model = [], [], [], []
    for k, lv in zip(np.unique(index), levels, strict=True):
        sel = index == k
        common = np.all(w[sel] > 0, axis=0)  # times every device of the level was read at
        if common.sum() < 2:
            continue
        cols = np.flatnonzero(common)
        ratio = y[sel][:, cols] - y[sel][:, cols[:1]]
        data += ratio.mean(0).tolist()
        predicted += (-lv.nu_mean * (x[sel][0, cols] - x[sel][0, cols[0]])).tolist()
        repeated = count[sel][:, cols] > 1
        if repeated.any():
            measured = np.sqrt(var[sel][:, cols].sum(0) / np.maximum(repeated.sum(0), 1))
            law = np.sqrt((eps2[sel][:, cols] * count[sel][:, cols] * mean[sel][:, cols] ** 2).mean(0))
            spread = repeated.any(0) & (measured > 0)  # reads that all agree have no std to compare
            read_data += measured[spread].tolist()
            read_model += law[spread].tolist()
    read_rel = (float(np.mean(np.abs(np.array(read_model) / np.array(read_data) - 1)))
                if read_data else None)
    sigma_r2 = _r2(sig, model)
    drift_r2 = _r2(np.array(data), np.array(predicted)) if data else float("nan")
    undefined: dict[str, str] = {}
    if math.isnan(sigma_r2):
        same = "a single level" if len(sig) == 1 else f"sigma_p is {sig[0]:.4g} uS at every level"
        undefined["sigma_r2"] = f"{same}: no variation to explain"
    if math.isnan(drift_r2):
        undefined["drift_r2"] = ("the mean reads do not change in time: no drift to explain" if data
                                 else "no level has two times at which all its devices were read")
    if read_rel is None:
        undefined["read_rel"] = ("one read per device and time" if read_source != "repeated reads"
                                 else "no level has repeated reads that differ at times all its devices "
                                 "were read at")
    return Quality(sigma_r2=sigma_r2, sigma_max_rel=sigma_rel, drift_r2=drift_r2, read_rel=read_rel,
                   read_source=read_source, undefined=undefined)


def _examples(target: np.ndarray, levels: np.ndarray, times: np.ndarray, mean: np.ndarray,
              w: np.ndarray, g_prog: np.ndarray, nu: np.ndarray) -> tuple:
    """The first device of up to four levels spread over the range."""
    ks = np.unique(levels)
    picks = ks[np.linspace(0, len(ks) - 1, min(4, len(ks))).round().astype(int)]
    out = []
    for k in dict.fromkeys(picks.tolist()):
        i = int(np.flatnonzero(levels == k)[0])
        on = w[i] > 0
        out.append((float(target[i]), times[on], mean[i, on], float(g_prog[i]), float(nu[i])))
    return tuple(out)
