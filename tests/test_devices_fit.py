"""imc-sim devices fit: the round trip (reads drawn through a family from a known profile, fitted
back), the profile it writes (loaded, deployed), and its bad input."""

import csv
import json
import math

import numpy as np
import pytest
import torch

from imc_sim.cli import main
from imc_sim.devices import build_family
from imc_sim.devices.families.pcm import DriftTable
from imc_sim.devices.fit import fit_measurements
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
