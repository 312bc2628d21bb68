"""imc-sim devices fit: the round trip (reads drawn through a family from a known profile, fitted
back), the profile it writes (loaded, deployed), and its bad input."""

import csv
import json
import math
import re

import numpy as np
import pytest
import torch

from imc_sim.cli import main
from imc_sim.devices import build_family
from imc_sim.devices.families.pcm import DriftTable, one_over_f
from imc_sim.devices.fit import T0, T_READ, fit_measurements, pcm_shape
from imc_sim.devices.fit_profile import fit_report
from imc_sim.devices.measurements import Measurements, draw_measurements, read_measurements
from imc_sim.devices.profile import load_profile, profile_from_dict
from imc_sim.errors import ImcSimError

TARGETS = [2.5, 6.25, 10.0, 13.75, 17.5, 21.25, 25.0]  # uS, g_max = 25
TIMES = [1.0, 60.0, 3600.0, 86400.0, 30 * 86400.0, 365 * 86400.0]  # s
TABLE = {"g": [0.0, 5.0, 10.0, 15.0, 20.0, 25.0], "nu_mean": [0.08, 0.07, 0.06, 0.055, 0.05, 0.049],
         "nu_std": [0.03, 0.025, 0.02, 0.015, 0.01, 0.008]}
PCM_COEFFS = [0.26348, 1.9650, -1.1731]


def truth_pcm(read_scale: float = 1.0):
    return profile_from_dict({"name": "truth", "description": "known pcm", "source": "test",
                              "model": "pcm", "drift": {"table": TABLE},
                              "read_noise": {"scale": read_scale}})


def relative_errors(fit, truth_sigma, truth_nu):
    """Largest relative error of sigma_p (the fitted polynomial, over the measured range), and of
    nu mean and nu std per level, against the truth."""
    g = np.linspace(TARGETS[0], TARGETS[-1], 50)
    sigma = np.max(np.abs(fit.sigma(g) / truth_sigma(g) - 1))
    mean, std = truth_nu(np.array([lv.g for lv in fit.levels]))
    nu_mean = np.max(np.abs(np.array([lv.nu_mean for lv in fit.levels]) / mean - 1))
    nu_std = np.max(np.abs(np.array([lv.nu_std for lv in fit.levels]) / std - 1))
    return sigma, nu_mean, nu_std


def pcm_truth_laws():
    table = DriftTable(*(tuple(TABLE[k]) for k in ("g", "nu_mean", "nu_std")))

    def nu(g):
        mean, std = table.interpolate(torch.as_tensor(g, dtype=torch.float64))
        return mean.numpy(), std.numpy()

    return (lambda g: np.polynomial.polynomial.polyval(g / 25.0, PCM_COEFFS)), nu


@pytest.mark.parametrize("reads, read_source", [(3, "repeated reads"), (1, "residuals of the drift fit")])
def test_pcm_round_trip_10000_devices_within_10_percent(reads, read_source):
    """10,000 devices (1,428 per level), 6 times: sigma_p(g), nu mean and std per level and the
    read-noise scale all come back within 10% (the polynomial's coefficients themselves are not
    determined that well by 10,000 devices; the curve they draw is)."""
    m = draw_measurements(truth_pcm(0.8), TARGETS, TIMES, 10_000 // len(TARGETS), reads=reads, seed=1)
    fit = fit_measurements(m, "pcm", g_max=25.0)
    assert fit.quality.read_source == read_source and fit.devices_used == m.n_devices
    sigma, nu_mean, nu_std = relative_errors(fit, *pcm_truth_laws())
    assert sigma < 0.10 and nu_mean < 0.10 and nu_std < 0.10
    assert abs(fit.read_scale / 0.8 - 1) < 0.10
    assert fit.quality.drift_r2 > 0.99 and fit.quality.sigma_r2 > 0.9


def test_the_round_trip_tolerance_rejects_a_wrong_truth():
    """Held against a truth with 1.5x the programming noise and 1.5x the drift, the same fit is far
    outside the 10% the round trip allows: the check can fail."""
    m = draw_measurements(truth_pcm(0.8), TARGETS, TIMES, 300, reads=2, seed=2)
    fit = fit_measurements(m, "pcm", g_max=25.0)
    sigma_law, nu_law = pcm_truth_laws()
    sigma, nu_mean, nu_std = relative_errors(fit, lambda g: 1.5 * sigma_law(g),
                                             lambda g: tuple(1.5 * v for v in nu_law(g)))
    assert min(sigma, nu_mean, nu_std) > 0.25


def test_state_independent_round_trip():
    truth = profile_from_dict({"name": "si", "description": "known", "source": "test",
                               "model": "state-independent", "programming": {"coeffs": [0.3, 0.5, 0.0]},
                               "drift": {"nu_mean": 0.05, "nu_std": 0.01},
                               "read_noise": {"scale": 0.3}})
    m = draw_measurements(truth, TARGETS, TIMES, 10_000 // len(TARGETS), reads=2, seed=3)
    fit = fit_measurements(m, "state-independent", g_max=25.0)
    sigma, nu_mean, nu_std = relative_errors(
        fit, lambda g: 0.3 + 0.5 * g / 25.0,
        lambda g: (np.full_like(g, 0.05), np.full_like(g, 0.01)))
    assert sigma < 0.10 and nu_mean < 0.10 and nu_std < 0.10
    assert abs(fit.read_scale / 0.3 - 1) < 0.10


def write_csv(m: Measurements, path, device=True):
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["device", "g_target", "time", "g_read"] if device else ["g_target", "time", "g_read"])
        for d, *rest in zip(m.device, m.g_target, m.time, m.g_read, strict=True):
            out.writerow([f"dev-{d}", *rest] if device else rest)


def test_cli_fit_writes_no_profile_when_its_plot_could_not_be_written(tmp_path, capsys):
    write_csv(draw_measurements(truth_pcm(), TARGETS, TIMES, 100, reads=2, seed=4), tmp_path / "reads.csv")
    out = tmp_path / "my-device.yaml"
    assert main(["devices", "fit", str(tmp_path / "reads.csv"), "--family", "pcm", "--out", str(out),
                 "--plot", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"imc-sim: error: --plot {tmp_path} is a folder; give a file name"
    assert not out.exists()


def test_cli_fit_writes_a_profile_that_loads_and_a_png(tmp_path, capsys):
    m = draw_measurements(truth_pcm(), TARGETS, TIMES, 100, reads=2, seed=4)
    write_csv(m, tmp_path / "reads.csv")
    out, png = tmp_path / "my-device.yaml", tmp_path / "fit.png"
    assert main(["devices", "fit", str(tmp_path / "reads.csv"), "--family", "pcm", "--out", str(out),
                 "--plot", str(png)]) == 0
    printed = capsys.readouterr().out
    assert "R^2" in printed and "read noise scale" in printed and f"wrote {out}" in printed
    profile = load_profile(str(out))
    assert profile.name == "my-device" and profile.model == "pcm"
    assert profile.drift["table"]["g"][0] == 0.0 and profile.drift["table"]["g"][-1] == 25.0
    assert 0.7 < profile.read_noise["scale"] < 1.3
    family = build_family(profile)
    assert family.program(torch.full((4,), 10.0), torch.zeros(4)).tolist() == [10.0] * 4
    assert png.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("argv", [
    ["devices", "fit", "READS", "--family", "pcm", "--out", "OUT"],
    ["devices", "fit", "--family", "pcm", "--out", "OUT", "READS"],
    ["devices", "fit", "--family", "pcm", "READS", "--out", "OUT"],
    ["devices", "--family", "pcm", "fit", "READS", "--out", "OUT"],
], ids=["file first", "options first", "file between", "options before fit"])
def test_cli_fit_takes_its_options_before_or_after_the_file(argv, tmp_path, capsys):
    write_csv(draw_measurements(truth_pcm(), TARGETS, TIMES[:3], 20, reads=2, seed=4), tmp_path / "reads.csv")
    out = tmp_path / "my-device.yaml"
    paths = {"READS": str(tmp_path / "reads.csv"), "OUT": str(out)}
    assert main([paths.get(word, word) for word in argv]) == 0
    assert f"wrote {out}" in capsys.readouterr().out and load_profile(str(out)).model == "pcm"


@pytest.mark.parametrize("copies", [2, 3])
def test_duplicated_rows_are_refused_not_fitted_as_no_read_noise(copies, tmp_path, capsys):
    """Every row written ``copies`` times: each (device, time) read alike each time (their mean not
    always exactly the read), so no read noise can be told; one line, exit 2, nothing written
    (not a profile with read noise 0 and a read check of nan)."""
    m = draw_measurements(truth_pcm(), TARGETS, TIMES[:3], 20, reads=1, seed=9)
    write_csv(Measurements(*(np.repeat(c, copies) for c in (m.device, m.g_target, m.time, m.g_read))),
              tmp_path / "reads.csv")
    out = tmp_path / "out.yaml"
    assert main(["devices", "fit", str(tmp_path / "reads.csv"), "--family", "pcm", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"imc-sim: error: measurements {tmp_path / 'reads.csv'}: the repeated reads of each "
                   "device at each time are all equal (duplicated rows?); the read noise needs at least two "
                   "different reads of a device at the same time, or one read per (device, time) at three "
                   "times or more")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reads.csv"]
    assert fit_measurements(m, "pcm").read_scale > 0  # the same reads once each: from the residuals


def test_copied_rows_are_counted_and_kept_out_of_the_read_check():
    """Two reads per (device, time), but at the first time the lowest level's second read is a copy
    of its first: that (level, time) has no read spread, which the read check used to divide by
    (`inf%`). Now the check leaves it out, and the report counts the copies and says what they do."""
    devices = 20
    m = draw_measurements(truth_pcm(), TARGETS, TIMES[:3], devices, reads=2, seed=4)
    n = devices * len(TARGETS)  # rows: per time, per read, every device
    clean = fit_measurements(m, "pcm")
    g_read = m.g_read.copy()
    g_read[n:n + devices] = g_read[:devices]
    copied = fit_measurements(Measurements(m.device, m.g_target, m.time, g_read), "pcm")
    assert (clean.copied_rows, copied.copied_rows) == (0, devices)
    assert math.isfinite(copied.quality.read_rel) and copied.read_scale < clean.read_scale
    report = fit_report(copied)
    assert "inf" not in report and report.splitlines()[-1] == (
        f"note: {devices} rows repeat an earlier row exactly (device, time and read); if they are copies, "
        "the read noise above is too low: remove them and fit again")
    assert "note:" not in fit_report(clean)


def test_json_lines_without_device_ids_are_read_in_order(tmp_path):
    """Without ids, the k-th read of a (target, time) is device k: the drift fit still finds nu."""
    m = draw_measurements(truth_pcm(), TARGETS, TIMES, 60, reads=1, seed=5)
    path = tmp_path / "reads.jsonl"
    path.write_text("".join(json.dumps({"g_target": float(g), "time": float(t), "g_read": float(r)}) + "\n"
                            for g, t, r in zip(m.g_target, m.time, m.g_read, strict=True)))
    read = read_measurements(path)
    assert read.n_devices == m.n_devices
    np.testing.assert_array_equal(read.device, m.device)
    fit = fit_measurements(read, "pcm")
    assert fit.g_max == 25.0 and all(abs(lv.nu_mean / 0.06 - 1) < 0.4 for lv in fit.levels)


def test_fitted_profile_deploys(tiny_checkpoint, tiny_glue, tmp_path):
    m = draw_measurements(truth_pcm(), TARGETS, TIMES, 40, reads=2, seed=6)
    write_csv(m, tmp_path / "reads.csv")
    out = tmp_path / "fitted.yaml"
    assert main(["devices", "fit", str(tmp_path / "reads.csv"), "--family", "pcm", "--out", str(out)]) == 0
    assert main(["deploy", str(tiny_checkpoint), "--data-dir", str(tiny_glue), "--device", str(out),
                 "--drift", "1d", "--seeds", "1", "--json", str(tmp_path / "r.json"), "--quiet"]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["device"] == "fitted"


def good_rows(n_devices=30, times=(1.0, 3600.0)):
    return [{"device": f"d{i}", "g_target": 5.0 + 5 * (i % 3), "time": t,
             "g_read": 5.0 + 5 * (i % 3) - 0.1 * k}
            for i in range(n_devices) for k, t in enumerate(times) for _ in range(2)]


def csv_text(rows, columns=("device", "g_target", "time", "g_read")):
    return "\n".join([",".join(columns), *(",".join(str(r[c]) for c in columns) for r in rows)]) + "\n"


BAD = {
    "missing column": (csv_text(good_rows(), ("device", "g_target", "time")), "pcm", "missing column g_read"),
    "NaN": (csv_text(good_rows()).replace("d3,5.0,1.0,5.0", "d3,5.0,1.0,nan"), "pcm",
            "g_read = 'nan' is not a finite number"),
    "negative conductance": (csv_text(good_rows()).replace("d3,5.0,1.0,5.0", "d3,5.0,1.0,-5.0"), "pcm",
                             "g_read = -5 uS is negative"),
    "single time": (csv_text(good_rows(times=(1.0,))), "pcm", "a single time point"),
    "too few devices": (csv_text(good_rows(n_devices=9)), "pcm", "too few devices to fit"),
    "unknown family": (csv_text(good_rows()), "flash", "supported: pcm, state-independent"),
    "unfittable family": (csv_text(good_rows()), "reram-wan2022", "cannot be fitted; supported: pcm"),
    "g_max below the targets": (csv_text(good_rows()), "pcm --g-max 8", "--g-max 8 uS is below the largest"),
    "not numbers": (csv_text(good_rows()).replace("d3,5.0,1.0,5.0", "d3,5.0,one,5.0"), "pcm",
                    "time = 'one' is not a number"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_measurements_one_line_exit_2_no_profile(case, tmp_path, capsys):
    text, family, message = BAD[case]
    data, out = tmp_path / "reads.csv", tmp_path / "out.yaml"
    data.write_text(text)
    assert main(["devices", "fit", str(data), "--family", *family.split(), "--out", str(out),
                 "--plot", str(tmp_path / "fit.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reads.csv"]  # nothing written


def test_a_device_with_two_targets_is_refused(tmp_path):
    rows = good_rows()
    rows[0]["g_target"] = 7.0
    (tmp_path / "r.csv").write_text(csv_text(rows))
    with pytest.raises(ImcSimError, match="a device has two targets"):
        read_measurements(tmp_path / "r.csv")


def test_fit_options_apply_to_fit_only(capsys):
    assert main(["devices", "show", "pcm", "--family", "pcm"]) == 2
    assert "apply to devices fit only" in capsys.readouterr().err
    assert main(["devices", "fit", "reads.csv"]) == 2
    assert "needs MEASUREMENTS, --family and --out" in capsys.readouterr().err


def test_read_noise_needs_repeats_or_three_times():
    m = draw_measurements(truth_pcm(), TARGETS, TIMES[:2], 30, reads=1, seed=7)
    with pytest.raises(ImcSimError, match="read noise needs repeated reads or reads at three times"):
        fit_measurements(m, "pcm")
    assert math.isfinite(fit_measurements(draw_measurements(truth_pcm(), TARGETS, TIMES[:2], 30, reads=2,
                                                            seed=7), "pcm").read_scale)


def test_continuous_targets_are_binned():
    """Targets spread evenly over (0, g_max] fall into 12 equal bins; the drift fit is unchanged."""
    targets = np.linspace(1.0, 25.0, 2400).tolist()
    m = draw_measurements(truth_pcm(), targets, TIMES, 1, reads=2, seed=8)
    fit = fit_measurements(m, "pcm", g_max=25.0)
    assert len(fit.levels) == 12 and fit.devices_used == 2400
    _, nu = pcm_truth_laws()
    mean, _ = nu(np.array([lv.g for lv in fit.levels]))
    assert np.max(np.abs(np.array([lv.nu_mean for lv in fit.levels]) / mean - 1)) < 0.1


DOUBLING = [20.0, 60.0, 140.0, 300.0]  # s: L(t) = ln((t + 20) / 20) = ln 2, 2 ln 2, 3 ln 2, 4 ln 2


def log_time_and_rel2(times, g_max: float) -> tuple[np.ndarray, np.ndarray]:
    """L(t) and the state-independent law's squared relative read std per unit scale, (f(t) / g_max)^2
    (module docstring, with the fit's default t0 and t_read)."""
    t = np.asarray(times, dtype=float)
    return np.log((t + T0) / T0), np.log((t + T0 + T_READ) / (2 * T_READ)) / g_max**2


def exact_reads(target, g_prog, nu, times, scale: float = 0.1, g_max: float = 25.0, reads=None,
                wiggle=0.0) -> Measurements:
    """Reads of state-independent devices that the fit's law describes exactly. reads[d, t] (2 by
    default; 0 = not read) reads per (device, time): two are M (1 +- e) with e^2 = scale^2 rel2 / 2,
    so their relative variance over rel2 is scale^2; their mean M = g_prog exp(-nu L - eps2 / 2 + wiggle)
    carries the bias of the log (eps2 = scale^2 rel2 / reads), so without ``wiggle`` the fit's
    corrected drift line goes through every mean."""
    target, g_prog, nu = (np.asarray(v, dtype=float) for v in (target, g_prog, nu))
    log_time, rel2 = log_time_and_rel2(times, g_max)
    reads = np.full((len(target), len(times)), 2) if reads is None else np.asarray(reads)
    mean = g_prog[:, None] * np.exp(-nu[:, None] * log_time - scale**2 * rel2 / (2 * np.maximum(reads, 1))
                                    + wiggle)
    e = scale * np.sqrt(rel2 / 2)
    rows = [(d, times[k], mean[d, k] * (1 + sign * e[k]) if reads[d, k] == 2 else mean[d, k])
            for d, k in np.ndindex(reads.shape) for sign in (1, -1)[:reads[d, k]]]
    device, time, g_read = (np.array(c) for c in zip(*rows, strict=True))
    return Measurements(device.astype(np.int64), target[device], time, g_read)


def slope_variance(log_time: np.ndarray, eps2: np.ndarray) -> float:
    """Variance of the least-squares slope of y on L for independent errors of variance eps2."""
    row = np.linalg.pinv(np.column_stack([np.ones_like(log_time), log_time]))[1]
    return float((row**2 * eps2).sum())


def seven_levels() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Targets, programmed conductances and drift exponents of five devices at each of ``TARGETS``,
    spread differently per level."""
    spread = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    target = np.repeat(TARGETS, 5)
    sigma = [0.25, 0.5, 0.45, 0.7, 0.6, 0.9, 0.8]
    g_prog = target + np.concatenate([s * np.roll(spread, k) for k, s in enumerate(sigma)])
    nu = np.repeat(np.linspace(0.08, 0.05, 7), 5) + 0.015 * np.concatenate(
        [np.roll(spread, 2 * k + 1) for k in range(7)])
    return target, g_prog, nu


def test_exact_reads_give_the_documented_estimates():
    """Seven levels of five devices, reads the law describes exactly (2 per time): the read scale,
    every level's nu mean, nu std (spread less the slope's variance) and sigma_p (spread at t1 less
    the read noise there and L1^2 var nu), the polynomial (least squares in relative error, weights
    n), its R^2 and largest relative error, the read std's agreement (exact), the drift R^2, and
    the plot's example devices (the first of levels 0, 2, 4, 6) all take their documented values."""
    target, g_prog, nu = seven_levels()
    m = exact_reads(target, g_prog, nu, DOUBLING, scale=0.1)
    fit = fit_measurements(m, "state-independent", g_max=25.0)
    assert fit.read_scale == pytest.approx(0.1, rel=1e-12)
    assert fit.quality.read_source == "repeated reads" and fit.devices_used == 35 and fit.devices_dropped == 0
    log_time, rel2 = log_time_and_rel2(DOUBLING, 25.0)
    eps2 = 0.1**2 * rel2 / 2
    nu_var = slope_variance(log_time, eps2)
    g1 = g_prog * np.exp(-eps2[0] / 2)  # g(t1) ((t1 + t0) / t0)^nu
    for k, level in enumerate(fit.levels):
        sel = slice(5 * k, 5 * k + 5)
        sigma_p2 = np.var(g1[sel] - target[sel], ddof=1) - np.mean(g1[sel] ** 2) * (eps2[0]
                                                                                  + log_time[0] ** 2 * nu_var)
        assert (level.g, level.devices) == (TARGETS[k], 5)
        assert level.nu_mean == pytest.approx(nu[sel].mean(), rel=1e-10)
        assert level.nu_std == pytest.approx(math.sqrt(np.var(nu[sel], ddof=1) - nu_var), rel=1e-8)
        assert level.sigma_p == pytest.approx(math.sqrt(sigma_p2), rel=1e-8)
    x = np.array([lv.g for lv in fit.levels]) / 25.0
    sig = np.array([lv.sigma_p for lv in fit.levels])
    scale = np.sqrt(5.0) / sig  # rows of n (fit / sigma_p - 1)^2
    coeffs = np.linalg.lstsq(scale[:, None] * np.vander(x, 3, increasing=True), scale * sig, rcond=None)[0]
    np.testing.assert_allclose(fit.coeffs, coeffs, rtol=1e-8)
    model = fit.sigma(x * 25.0)
    r2 = 1 - ((sig - model) ** 2).sum() / ((sig - sig.mean()) ** 2).sum()
    assert fit.quality.sigma_r2 == pytest.approx(r2)
    assert fit.quality.sigma_r2 < 0.99
    assert fit.quality.sigma_max_rel == pytest.approx(np.max(np.abs(model - sig) / sig))
    assert fit.quality.read_rel < 1e-9 and fit.quality.drift_r2 > 1 - 1e-6
    assert [ex[0] for ex in fit.examples] == [TARGETS[k] for k in (0, 2, 4, 6)]
    for (_, times, reads, ex_g_prog, ex_nu), k in zip(fit.examples, (0, 2, 4, 6), strict=True):
        i = 5 * k
        np.testing.assert_array_equal(times, DOUBLING)
        np.testing.assert_allclose(reads, g_prog[i] * np.exp(-nu[i] * log_time - eps2 / 2), rtol=1e-12)
        assert ex_g_prog == pytest.approx(g_prog[i], rel=1e-10) and ex_nu == pytest.approx(nu[i], rel=1e-9)


def test_conductances_in_siemens_give_the_same_fit_in_siemens():
    """The fit has no unit of its own: the same reads in S (1e-6 x uS) give the same drift exponents
    and the programming noise, its polynomial and the read scale 1e-6 x as large."""
    target, g_prog, nu = seven_levels()
    m = exact_reads(target, g_prog, nu, DOUBLING, scale=0.1)
    fit = fit_measurements(m, "state-independent", g_max=25.0)
    in_siemens = Measurements(m.device, 1e-6 * m.g_target, m.time, 1e-6 * m.g_read)
    si = fit_measurements(in_siemens, "state-independent", g_max=25e-6)
    np.testing.assert_allclose(si.coeffs, 1e-6 * np.array(fit.coeffs), rtol=1e-9)
    assert si.read_scale == pytest.approx(1e-6 * fit.read_scale, rel=1e-12)
    assert [lv.nu_mean for lv in si.levels] == pytest.approx([lv.nu_mean for lv in fit.levels], rel=1e-12)
    np.testing.assert_allclose([lv.sigma_p for lv in si.levels], [1e-6 * lv.sigma_p for lv in fit.levels],
                               rtol=1e-9)


def test_devices_without_two_times_or_with_a_zero_mean_are_left_out():
    """Four levels of exactly five devices (20 in all, the least the fit takes) beside: a device read
    at one time, one whose reads at 60 s are all 0, and a whole top level read once each. They are
    dropped; a kept device missing its last time still counts, and its mean reads fit exactly."""
    target = np.concatenate([np.repeat([5.0, 10.0, 15.0, 20.0], 5), [10.0, 15.0], np.full(5, 25.0)])
    g_prog = target * np.linspace(0.95, 1.05, len(target))
    nu = np.linspace(0.04, 0.07, len(target))
    reads = np.full((len(target), 4), 2)
    reads[0, 3] = 0  # first device of the lowest level: not read at 300 s
    reads[20, 1:] = 0  # read at one time only
    reads[22:, 1:] = 0  # the top level: one time each (so the last device's last time is not read)
    m = exact_reads(target, g_prog, nu, DOUBLING, reads=reads)
    m.g_read[(m.device == 21) & (m.time == 60.0)] = 0.0
    fit = fit_measurements(m, "state-independent", g_max=25.0)
    assert (fit.devices_used, fit.devices_dropped) == (20, 7)
    assert [(lv.g, lv.devices) for lv in fit.levels] == [(5.0, 5), (10.0, 5), (15.0, 5), (20.0, 5)]
    assert fit.read_scale == pytest.approx(0.1, rel=1e-12)
    for k, level in enumerate(fit.levels):
        assert level.nu_mean == pytest.approx(nu[5 * k:5 * k + 5].mean(), rel=1e-10)
    ex_target, times, mean_reads, ex_g_prog, ex_nu = fit.examples[0]
    log_time, rel2 = log_time_and_rel2(DOUBLING[:3], 25.0)
    np.testing.assert_array_equal(times, DOUBLING[:3])
    expected = g_prog[0] * np.exp(-nu[0] * log_time - 0.1**2 * rel2 / 4)
    np.testing.assert_allclose(mean_reads, expected, rtol=1e-12)
    assert (ex_target, ex_g_prog, ex_nu) == (5.0, pytest.approx(g_prog[0], rel=1e-10), pytest.approx(nu[0]))


def test_read_noise_from_a_mix_of_repeated_and_single_reads():
    """The first device of each level read twice per time, the others once (one not at all at 300 s):
    the scale is the repeated reads' (exactly), and the law's read std per (level, time) matches the
    repeated reads' (up to the log bias factors, ~1e-4)."""
    target = np.repeat([5.0, 10.0, 15.0, 20.0], 5)
    reads = np.ones((20, 4), dtype=int)
    reads[::5] = 2
    reads[1, 3] = 0
    m = exact_reads(target, target, np.repeat([0.06, 0.05, 0.045, 0.04], 5), DOUBLING, reads=reads)
    fit = fit_measurements(m, "state-independent", g_max=25.0)
    assert fit.quality.read_source == "repeated reads" and fit.read_scale == pytest.approx(0.1, rel=1e-12)
    assert fit.quality.read_rel < 1e-3


def test_read_scale_from_the_drift_fit_residuals():
    """One read per time at three times (the fewest that leave a residual): the scale is sqrt(rss /
    sum (1 - h_tt) rel2_t) (h the hat matrix of the line fit); one repeated read is enough to
    switch to the repeated reads' spread."""
    target = np.repeat([5.0, 10.0, 15.0, 20.0], 5)
    wiggle = 0.002 * (1 + np.arange(20) % 3)[:, None] * np.array([1.0, -2.0, 1.0])
    times = DOUBLING[:3]
    m = exact_reads(target, target, np.full(20, 0.05), times, scale=0.0, reads=np.ones((20, 3), dtype=int),
                    wiggle=wiggle)
    fit = fit_measurements(m, "state-independent", g_max=25.0)
    log_time, rel2 = log_time_and_rel2(times, 25.0)
    design = np.column_stack([np.ones(3), log_time])
    y = np.log(m.g_read.reshape(20, 3))
    rss = np.linalg.lstsq(design, y.T, rcond=None)[1].sum()
    hat = np.diag(design @ np.linalg.pinv(design))
    assert fit.quality.read_source == "residuals of the drift fit" and fit.quality.read_rel is None
    assert fit.read_scale == pytest.approx(math.sqrt(rss / (20 * ((1 - hat) * rel2).sum())), rel=1e-10)
    again = 1.01 * m.g_read[1]  # device 0 at 60 s, read a second time
    m2 = Measurements(np.append(m.device, 0), np.append(m.g_target, 5.0), np.append(m.time, times[1]),
                      np.append(m.g_read, again))
    fit2 = fit_measurements(m2, "state-independent", g_max=25.0)
    pair = np.array([m.g_read[1], again])
    assert fit2.quality.read_source == "repeated reads"
    assert fit2.read_scale == pytest.approx(math.sqrt(np.var(pair, ddof=1) / pair.mean() ** 2 / rel2[1]))


def test_the_drift_r2_uses_the_times_common_to_a_level():
    """Devices read at two of three times, a different two in turn, share no time: their level has no
    ratio g(t) / g(t1) to compare and is left out of the drift R^2 and the read-noise check (the
    other levels still count); with every level so, neither has data (nan, None)."""
    target = np.repeat([5.0, 10.0, 15.0, 20.0], 5)
    rotated = np.array([[k != j % 3 for k in range(3)] for j in range(5)], dtype=int) * 2
    for levels_rotated in (1, 4):
        reads = np.full((20, 3), 2)
        reads[:5 * levels_rotated] = np.tile(rotated, (levels_rotated, 1))
        m = exact_reads(target, target, np.repeat([0.06, 0.05, 0.045, 0.04], 5), DOUBLING[:3], reads=reads)
        quality = fit_measurements(m, "state-independent", g_max=25.0).quality
        if levels_rotated == 1:
            assert quality.drift_r2 > 1 - 1e-6 and quality.read_rel < 1e-9
        else:
            assert math.isnan(quality.drift_r2) and quality.read_rel is None


def test_reads_constant_in_time_leave_the_drift_r2_undefined():
    """Mean reads that are the same at every time (g +- g / 4, means exact in floating point): no
    change to explain, so the drift R^2 is nan, although the fitted nu (from the bias-corrected
    logs) is not exactly 0."""
    device = np.repeat(np.arange(20), 4)
    target = np.repeat([8.0, 16.0], 40)
    time = np.tile([20.0, 20.0, 60.0, 60.0], 20)
    g_read = target * np.tile([0.75, 1.25], 40)
    fit = fit_measurements(Measurements(device, target, time, g_read), "state-independent")
    assert all(lv.nu_mean != 0.0 for lv in fit.levels)
    assert math.isnan(fit.quality.drift_r2)


def test_the_report_says_why_a_quality_measure_is_undefined():
    """No R^2 printed as nan: devices programmed exactly (sigma_p 0 uS at every level, a legitimate
    zero), mean reads the same at both times, or no level read at two times in common each say why,
    as does the read check without data."""
    target = np.repeat([5.0, 10.0, 15.0, 20.0], 5)
    exact = fit_report(fit_measurements(exact_reads(target, target, np.full(20, 0.05), [20.0, 60.0]),
                                        "state-independent", g_max=25.0))
    assert "programming std vs levels: R^2 undefined (sigma_p is 0 uS at every level: no variation to " \
           "explain), max relative error 0.0%" in exact
    device, time = np.repeat(np.arange(20), 4), np.tile([20.0, 20.0, 60.0, 60.0], 20)
    flat = np.repeat([8.0, 16.0], 40)
    still = fit_report(fit_measurements(Measurements(device, flat, time, flat * np.tile([0.75, 1.25], 40)),
                                        "state-independent"))
    assert "-nu_mean L: R^2 undefined (the mean reads do not change in time: no drift to explain)" in still
    rotated = np.tile([[k != j % 3 for k in range(3)] for j in range(5)], (4, 1)).astype(int) * 2
    apart = fit_report(fit_measurements(exact_reads(target, target, np.full(20, 0.05), DOUBLING[:3],
                                                    reads=rotated), "state-independent", g_max=25.0))
    assert "-nu_mean L: R^2 undefined (no level has two times at which all its devices were read)" in apart
    assert "error n/a (no level has repeated reads that differ at times all its devices were read at)" \
        in apart
    assert not any("nan" in report for report in (exact, still, apart))


def test_up_to_24_distinct_targets_are_levels_more_are_binned():
    """24 distinct targets are 24 levels; 25 fall into the 12 bins of g_max / 12, where the spread of
    the targets within a bin is not programming noise (programmed exactly: sigma_p = 0, so their
    R^2 is undefined). Two times suffice for the drift R^2."""
    for n, bins in ((24, None), (25, np.minimum((np.arange(1, 26) * 12 / 25).astype(int), 11))):
        target = np.repeat(np.arange(1.0, n + 1), 5)
        m = exact_reads(target, target, 0.03 + 0.001 * target, [20.0, 60.0])
        fit = fit_measurements(m, "state-independent", g_max=25.0)
        assert fit.devices_used == 5 * n and all(lv.sigma_p == 0.0 for lv in fit.levels)
        assert math.isnan(fit.quality.sigma_r2) and fit.quality.drift_r2 > 1 - 1e-6
        if bins is None:
            assert [(lv.g, lv.devices) for lv in fit.levels] == [(g, 5) for g in range(1, 25)]
        else:
            means = [np.arange(1.0, 26)[bins == b].mean() for b in range(12)]
            np.testing.assert_allclose([lv.g for lv in fit.levels], means, rtol=1e-12)


def test_two_levels_below_1_us_get_a_line_through_both():
    """Targets of 0.4 and 0.8 uS (g_max 0.8, from the targets): two levels, a first-degree polynomial."""
    target = np.repeat([0.4, 0.8], 10)
    spread = np.tile([-2.0, -1.0, 0.0, 1.0, 2.0], 4)
    g_prog = target + np.repeat([0.05, 0.08], 10) * spread
    m = exact_reads(target, g_prog, np.full(20, 0.05), DOUBLING, scale=0.01, g_max=0.8)
    fit = fit_measurements(m, "state-independent")
    assert fit.g_max == 0.8 and len(fit.coeffs) == 2
    sigma_p = [lv.sigma_p for lv in fit.levels]
    assert min(sigma_p) > 0.05
    np.testing.assert_allclose(fit.sigma(np.array([0.4, 0.8])), sigma_p, rtol=1e-9)


def test_fit_refusals_say_why():
    """A single time point, every target 0 (no g_max to scale by), and one read at two times (no
    read noise), each with its own message naming the measurements."""
    ones = np.full(20, 5.0)
    with pytest.raises(ImcSimError, match=r"a single time point \(60 s\); the drift fit needs reads at two"):
        fit_measurements(exact_reads(ones, ones, ones / 100, [60.0]), "pcm")
    with pytest.raises(ImcSimError, match="every target is 0 uS; nothing to fit"):
        fit_measurements(exact_reads(0 * ones, ones, ones / 100, DOUBLING), "pcm")
    m = exact_reads(ones, ones, ones / 100, DOUBLING[:2], reads=np.ones((20, 2), dtype=int))
    with pytest.raises(ImcSimError, match="^measurements lab.csv: one read per"):
        fit_measurements(Measurements(m.device, m.g_target, m.time, m.g_read, "lab.csv"), "pcm")


def test_pcm_read_shape_is_the_family_s_relative_read_std():
    """pcm_shape is what the pcm family's drift adds per unit read scale and unit 1/f noise (capped at
    0.2 for the lowest conductances), and the cap at g = 0."""
    g = torch.tensor([0.01, 0.1, 1.0, 10.0, 25.0], dtype=torch.float64)
    family = build_family(truth_pcm())
    t = 3600.0
    g_d = family.drift(g, torch.zeros_like(g), t, torch.zeros_like(g))
    noisy = family.drift(g, torch.zeros_like(g), t, torch.ones_like(g))
    q = ((noisy - g_d) / g_d / one_over_f(t, T0, T_READ)).numpy()
    np.testing.assert_allclose(pcm_shape(g.numpy(), 25.0), q, rtol=1e-12)
    assert q[0] == pytest.approx(0.2) and pcm_shape(np.zeros(1), 25.0)[0] == 0.2


def test_a_device_of_another_t0_is_fitted_with_its_t0_and_the_profile_records_it(tmp_path, capsys):
    """t0 is not fitted: reads drawn with t0 = 200 s and fitted with the default 20 s give a drift
    exponent 15% low; with --t0 200 it comes back within 3%, and the profile keeps t0 and t_read."""
    truth = profile_from_dict({"name": "truth", "description": "known pcm", "source": "test", "model": "pcm",
                               "drift": {"table": TABLE, "t0": 200.0}, "read_noise": {"scale": 0.8}}, "x")
    m = draw_measurements(truth, TARGETS, TIMES, 300, reads=3, seed=1)
    assert relative_errors(fit_measurements(m, "pcm", g_max=25.0), *pcm_truth_laws())[1] > 0.12
    assert relative_errors(fit_measurements(m, "pcm", g_max=25.0, t0=200.0), *pcm_truth_laws())[1] < 0.03
    write_csv(m, tmp_path / "reads.csv")
    out = tmp_path / "fit.yaml"
    assert main(["devices", "fit", str(tmp_path / "reads.csv"), "--family", "pcm", "--out", str(out),
                 "--g-max", "25", "--t0", "200", "--t-read", "1e-6"]) == 0
    fitted = load_profile(str(out))
    assert (fitted.drift["t0"], fitted.read_noise["t_read"]) == (200.0, 1e-6)


@pytest.mark.parametrize("option, value, message", [
    ("t0", 2e6, "devices fit: t0 = 2000000.0 s is out of range; allowed a number in (0, 1e+06] (seconds)"),
    ("t_read", 2.0, "devices fit: t_read = 2.0 s is out of range; allowed a number in (0, 1] (seconds)"),
    ("t0", float("nan"), "devices fit: t0 = nan s is out of range"),
    ("t0", "200", "devices fit: t0 = '200' s is out of range"),
])
def test_a_t0_or_t_read_a_profile_cannot_hold_is_refused_before_the_fit(option, value, message):
    m = draw_measurements(truth_pcm(), TARGETS, TIMES, 10, reads=2, seed=1)
    with pytest.raises(ImcSimError, match=re.escape(message)):
        fit_measurements(m, "pcm", **{option: value})


def test_t0_and_t_read_apply_to_fit_only(capsys):
    assert main(["devices", "show", "pcm", "--t0", "200"]) == 2
    assert "--t0 and --t-read apply to devices fit only" in capsys.readouterr().err


@pytest.mark.parametrize("changes, message", [
    ({"targets": []}, "targets [] must be conductances in [0, 25] uS"),
    ({"targets": [2.0, 30.0]}, "targets [2.0, 30.0] must be conductances in [0, 25] uS"),
    ({"targets": ["5"]}, "targets ['5'] must be conductances"),
    ({"times": [-1.0]}, "times [-1.0] must be seconds >= 0"),
    ({"times": [float("nan")]}, "times [nan] must be seconds >= 0"),
    ({"devices_per_target": 0}, "devices_per_target = 0 must be an integer >= 1"),
    ({"reads": 1.5}, "reads = 1.5 must be an integer >= 1"),
    ({"seed": -1}, "seed = -1 must be an integer from 0"),
])
def test_drawing_measurements_checks_its_arguments(changes, message):
    arguments = {"targets": TARGETS, "times": TIMES, "devices_per_target": 5, "reads": 1, "seed": 0,
                 **changes}
    with pytest.raises(ImcSimError, match="draw_measurements: " + re.escape(message)):
        draw_measurements(truth_pcm(), **arguments)
