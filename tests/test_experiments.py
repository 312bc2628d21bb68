"""The experiment scripts end to end on the tiny model: JSON in the compare schema, PNG, results.md."""

import dataclasses
import json
import math
import re
import statistics
import sys
from pathlib import Path

import pytest
import torch
from scipy import stats
from transformers import AutoModelForSequenceClassification

from imc_sim import cli
from imc_sim.crossbar.mapping import analog_layer_names
from imc_sim.deploy.results import CheckpointCurve, CompareResult, ExperimentTag, TimePoint, load_result
from imc_sim.devices.profile import load_profile
from imc_sim.tasks import get_task

sys.path.insert(0, str(__import__("conftest").REPO / "experiments"))
import common  # noqa: E402
from fidelity_layers import aihwkit_errors, default_settings, imc_errors  # noqa: E402
from paired import PairedStats, compare_arms  # noqa: E402


@pytest.fixture
def results_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(common, "RESULTS_MD", tmp_path / "results.md")
    return tmp_path


def run_script(module_name, monkeypatch, *argv):
    module = __import__(module_name)
    monkeypatch.setattr(module, "RESULTS", common.RESULTS, raising=False)
    monkeypatch.setattr(sys, "argv", [module_name, *argv])
    module.main()


def test_drift_experiment_grid_of_training_seeds_and_chips(results_dir, wide_model_dir, tiny_glue,
                                                           monkeypatch, capsys):
    drift_pcm = __import__("drift_pcm")  # three of its arms (time), all its settings for them
    arms = ("grasp-w-k64", "grasp-w-pcm", "stochgrasp-pcm-warm")
    monkeypatch.setattr(drift_pcm, "ARMS", {a: drift_pcm.ARMS[a] for a in arms})
    monkeypatch.setattr(drift_pcm, "STOCH", arms[2:])
    monkeypatch.setattr(drift_pcm, "DETERMINISTIC", arms[:2])
    argv = ("--model", str(wide_model_dir), "--data-dir", str(tiny_glue), "--steps", "2", "--seeds", "2",
            "--train-seeds", "2", "--devices", "pcm")
    run_script("drift_pcm", monkeypatch, *argv)
    out = capsys.readouterr().out
    assert "6 checkpoints: 0 cached, 6 trained now" in out
    assert "pcm @ 1d: stochgrasp-pcm-warm below" in out and "pcm @ 1y: stochgrasp-pcm-warm below" in out
    assert "vs grasp-w-k64: over training seeds" in out and "vs grasp-w-pcm" in out
    results = results_dir / "results"
    pcm = json.loads((results / "drift_pcm-full.json").read_text())
    names = [c["name"] for c in pcm["checkpoints"]]
    assert names == ["grasp-w-k64-full", "grasp-w-k64-s1-full", "grasp-w-pcm-full", "grasp-w-pcm-s1-full",
                     "stochgrasp-pcm-warm-full", "stochgrasp-pcm-warm-s1-full"]
    assert pcm["checkpoints"][2]["device_trained"] == "pcm @ 1h..1y"
    assert pcm["checkpoints"][5]["device_trained"] == "pcm @ 1h..1y, after 50% digital"
    labels = [p["label"] for p in pcm["checkpoints"][0]["times"]]
    assert labels == ["1s", "1h", "1d", "1w", "1mo", "1y", "10y"]
    point = pcm["checkpoints"][0]["times"][0]
    assert {"t_seconds", "metrics", "mean", "std"} <= set(point) and len(point["metrics"]) == 2
    typed = load_result(results / "drift_pcm-full.json")
    assert typed.experiment == ExperimentTag("drift_pcm-full", quick=False, steps=2)
    assert typed.checkpoints[0].points[0].mean == pytest.approx(sum(point["metrics"]) / 2)
    # the headline: every comparison paired by (training seed, chip), read back from the compare JSON
    head = json.loads((results / "drift_pcm-headline-full.json").read_text())
    assert (head["train_seeds"], head["chips"], len(head["comparisons"])) == ([0, 1], 2, 2 * 2)
    at = {(c["arm_a"], c["arm_b"], c["label"]): c for c in head["comparisons"]}
    c = at["stochgrasp-pcm-warm", "grasp-w-k64", "1y"]
    curves = {x.name: x for x in typed.checkpoints}
    chip_means = []
    for seed, pair in zip((0, 1), c["per_seed"], strict=True):
        suffix = "-s1-full" if seed else "-full"
        a, b = curves["stochgrasp-pcm-warm" + suffix].at("1y"), curves["grasp-w-k64" + suffix].at("1y")
        diffs = [x - y for x, y in zip(a.metrics, b.metrics, strict=True)]
        assert pair["train_seed"] == seed and pair["chips"]["diffs"] == pytest.approx(diffs)
        chip_means.append(sum(diffs) / 2)
    assert c["over_seeds"]["diffs"] == pytest.approx(chip_means) and c["over_seeds"]["df"] == 1
    md = (results_dir / "results.md").read_text()
    assert "<!-- drift_pcm-full -->" in md and "| stochgrasp-pcm-warm - grasp-w-k64 | 1y |" in md
    assert re.search(r"^\| grasp-w-pcm +\| grasp-w +\| pcm @ 1h\.\.1y", md, re.M)  # one row per arm
    assert "-s1-full" not in md
    assert (results / "drift_pcm-full.png").exists()
    # a second run trains nothing and runs no sweep unit again
    run_script("drift_pcm", monkeypatch, *argv)
    assert "6 checkpoints: 6 cached, 0 trained now" in capsys.readouterr().out
    assert json.loads((results / "drift_pcm-full.json").read_text()) == pcm
    assert len((results / "sweeps" / "drift_pcm-full.results.jsonl").read_text().splitlines()) == 6 * 2 * 7
    # a narrowed run: two of the arms at one time, under its own name; the cached checkpoints reused
    run_script("drift_pcm", monkeypatch, *argv, "--arms", "grasp-w-pcm,stochgrasp-pcm-warm", "--times", "1d",
               "--label", "narrow")
    assert "4 checkpoints: 4 cached, 0 trained now" in capsys.readouterr().out
    narrow = load_result(results / "drift_pcm-full-narrow.json")
    assert [c.name for c in narrow.checkpoints] == names[2:]
    assert [p.label for p in narrow.checkpoints[0].points] == ["1d"]
    same = [r.by_name("grasp-w-pcm-full").at("1d").metrics for r in (narrow, typed)]
    assert same[0] == same[1]
    head = json.loads((results / "drift_pcm-headline-full-narrow.json").read_text())
    assert [(c["arm_a"], c["arm_b"], c["label"]) for c in head["comparisons"]] == [
        ("stochgrasp-pcm-warm", "grasp-w-pcm", "1d")]
    assert json.loads((results / "drift_pcm-full.json").read_text()) == pcm
    # a deploy-only fix: the same checkpoints on pcm with per-column compensation, a profile of its own
    run_script("drift_pcm", monkeypatch, *argv, "--devices", "pcm-per-column", "--arms",
               "grasp-w-pcm,stochgrasp-pcm-warm", "--times", "1d", "--label", "narrow")
    profile = load_profile(str(results / "profiles" / "pcm-per-column.yaml"))
    assert (profile.compensation, load_profile("pcm").compensation) == ("per-column", "global")
    assert dataclasses.replace(profile, compensation="global", name="pcm", description="", path="") == \
        dataclasses.replace(load_profile("pcm"), description="", path="")
    per_column = load_result(results / "drift_pcm-per-column-full-narrow.json")
    assert per_column.device == "pcm-per-column"
    assert [c.name for c in per_column.checkpoints] == names[2:]
    assert (results / "drift_pcm-headline-per-column-full-narrow.json").exists()
    # another device has its headline too, at its own last time (reram's model ends at 2 d)
    run_script("drift_pcm", monkeypatch, *argv, "--devices", "reram", "--arms",
               "grasp-w-pcm,stochgrasp-pcm-warm", "--times", "1d,2d", "--label", "narrow")
    head = json.loads((results / "drift_reram-headline-full-narrow.json").read_text())
    assert head["device"] == "reram"
    assert [c["label"] for c in head["comparisons"]] == ["1d", "2d"]


def script_error(module_name: str, argv: list[str], monkeypatch, capsys) -> str:
    """The one line a script prints for ``argv`` (asserted: exit 2, one line, nothing written)."""
    module = __import__(module_name)
    monkeypatch.setattr(module, "RESULTS", common.RESULTS, raising=False)
    monkeypatch.setattr(sys, "argv", [f"{module_name}.py", *argv])
    with pytest.raises(SystemExit) as exited:
        cli.run_script(module.main)
    err = capsys.readouterr().err
    assert exited.value.code == 2 and len(err.splitlines()) == 1, err
    assert not common.RESULTS.exists() or not list(common.RESULTS.rglob("*.pt"))
    return err.strip()


@pytest.mark.parametrize("argv, message", [
    (["--train-seeds", "0"], "argument --train-seeds: must be at least 1, got 0"),
    (["--seeds", "0"], "argument --seeds: must be at least 1, got 0"),
    (["--steps", "0"], "argument --steps: must be at least 1, got 0"),
    (["--eval-limit", "-5"], "argument --eval-limit: must be at least 1, got -5"),
    (["--devices", "pcm,memristor"], "argument --devices: unknown 'memristor'"),
    (["--devices", ""], "argument --devices: expected comma-separated names, got ''"),
    (["--devices", "pcm,pcm"], "argument --devices: 'pcm' is named twice"),
    (["--arms", "grasp-w-pcm,lora-r4"], "argument --arms: unknown 'lora-r4'"),
    (["--arms", "grasp-w-pcm"], "--arms and --times need --label"),
    (["--times", "1d"], "--arms and --times need --label"),
    (["--times", "1d", "--label", "../../escape"], "argument --label: expected a name without '/'"),
    (["--times", "bogus", "--label", "x"], "'bogus'"),  # before any training
    (["--no-such-option"], "unrecognized arguments: --no-such-option"),
])
def test_drift_experiment_bad_input_is_one_line(argv, message, results_dir, monkeypatch, capsys):
    err = script_error("drift_pcm", ["--data-dir", "/nonexistent", *argv], monkeypatch, capsys)
    assert err.startswith("drift_pcm.py: error: ") and message in err


@pytest.mark.parametrize("script, argv, message", [
    ("fig6_gaussian", ["--sigmas", "abc"], "argument --sigmas: expected a number, got 'abc'"),
    ("fig6_gaussian", ["--sigmas", "0.01,-1"], "argument --sigmas: must be at least 0, got -1"),
    ("fig6_gaussian", ["--lam", "-1"], "argument --lam: must be at least 0, got -1"),
    ("fig6_gaussian", ["--sigma-target", "nan"], "argument --sigma-target: expected a finite number"),
    ("k_tradeoff", ["--seeds", "0"], "argument --seeds: must be at least 1, got 0"),
    ("fidelity", ["--fit-devices", "5"], "argument --fit-devices: must be at least 40, got 5"),
    ("fidelity", ["--rows", "0"], "argument --rows: must be at least 1, got 0"),
    ("fidelity", ["--times", "bogus"], "'bogus'"),
    ("periphery_grasp", ["--device", "memristor"], "memristor"),
    ("periphery_grasp", ["--drift", "bogus"], "'bogus'"),
    ("placement", ["--checkpoint", "x.pt", "--name", "../x"], "argument --name: expected a name without '/'"),
    ("placement", ["--checkpoint", "x.pt", "--step", "0"], "argument --step: must be at least 1, got 0"),
    ("gap_decomposition", ["--train-seeds", "0"], "argument --train-seeds: must be at least 1, got 0"),
    ("gap_decomposition", ["--chips", "1"], "argument --chips: must be at least 2, got 1"),
    ("gap_decomposition", ["--chips", "3", "--draws", "4"], "--draws (4) must be at most --chips (3)"),
    ("gap_decomposition", ["--points", "pcm@1d,"], "argument --points: expected comma-separated names"),
    ("gap_decomposition", ["--points", "pcm"], "--points: 'pcm' is not device@time"),
    ("noise_regime", ["--devices", ""], "argument --devices: expected comma-separated names, got ''"),
    ("noise_regime", ["--fig6", "../fig6"], "argument --fig6: expected a name without '/'"),
    ("error_structure", ["--seeds", "1"], "argument --seeds: must be at least 2, got 1"),
    ("error_structure", ["--devices", "pcm,memristor", "--checkpoint", "never-read.pt"], "memristor"),
])
def test_experiment_bad_input_is_one_line_before_any_work(script, argv, message, results_dir, monkeypatch,
                                                          capsys):
    err = script_error(script, ["--data-dir", "/nonexistent", *argv] if script not in (
        "noise_regime", "error_structure") else argv, monkeypatch, capsys)
    assert err.startswith(f"{script}.py: error: ") and message in err


@pytest.mark.parametrize("text, message", [
    ('{"sigma_unit": "weight units", "comparisons": [', "fig6.json: "),
    ("[1, 2]", "is not a result of experiments/fig6_gaussian.py (a JSON object)"),
    ('{"sigma_unit": "weight units", "comparisons": [], "arms": [{"arm": "grasp-w-k64"}, '
     '{"arm": "stochgrasp-gauss"}], "sigmas": "x"}', "fig6_gaussian.py (ValueError"),
    ('{"sigma_unit": "weight units", "comparisons": [], "arms": 3}',
     "is not a result of experiments/fig6_gaussian.py (TypeError"),
])
def test_noise_regime_with_a_broken_fig6_result_is_one_line(text, message, results_dir, monkeypatch, capsys):
    (results_dir / "results").mkdir()
    (results_dir / "results" / "fig6.json").write_text(text)
    err = script_error("noise_regime", ["--fig6", "fig6"], monkeypatch, capsys)
    assert err.startswith("noise_regime.py: error: ") and message in err


def test_fig6_settings_other_than_the_published_get_their_own_names():
    fig6 = __import__("fig6_gaussian")
    assert fig6.settings_suffix(fig6.DEFAULT_TARGET, fig6.DEFAULT_LAM) == ""
    assert fig6.settings_suffix(0.02, fig6.DEFAULT_LAM) == "-st0.02-lam0.05"
    assert list(fig6.fig6_arms(0.02, 0.1)) == ["grasp-w-k64", "stochgrasp-gauss-st0.02-lam0.1"]
    assert fig6.fig6_arms(0.02, 0.1)["stochgrasp-gauss-st0.02-lam0.1"]["method_options"]["lam"] == 0.1


def test_k_tradeoff_and_fig6(results_dir, wide_model_dir, tiny_glue, monkeypatch):
    run_script("k_tradeoff", monkeypatch, "--model", str(wide_model_dir), "--data-dir", str(tiny_glue),
               "--steps", "2", "--seeds", "1")
    md = (results_dir / "results.md").read_text()
    assert "| 8 " in md and "<!-- k_tradeoff-full -->" in md
    run_script("fig6_gaussian", monkeypatch, "--model", str(wide_model_dir), "--data-dir", str(tiny_glue),
               "--steps", "2", "--seeds", "2", "--train-seeds", "2")
    fig6 = json.loads((results_dir / "results" / "fig6_gaussian-full.json").read_text())
    # drift_pcm's checkpoints, named as its grid names them, so both scripts deploy the same models
    assert [c["name"] for c in fig6["checkpoints"]] == ["grasp-w-k64-full", "grasp-w-k64-s1-full",
                                                       "stochgrasp-gauss-full", "stochgrasp-gauss-s1-full"]
    assert [p["sigma"] for p in fig6["checkpoints"][0]["sigmas"]] == [0.0, 0.0025, 0.005, 0.01, 0.02]
    assert fig6["metric_name"] == get_task("sst2").metric_name == "accuracy"
    for arm in fig6["checkpoints"]:  # no injected noise: every seed sees the digital model
        assert arm["sigmas"][0]["metrics"] == [arm["digital_metric"]] * 2 and arm["sigmas"][0]["std"] == 0
        assert all(0 <= m <= 1 for p in arm["sigmas"] for m in p["metrics"])
        stds = arm["layer_weight_std"].values()
        assert arm["median_layer_weight_std"] == pytest.approx(statistics.median(stds))
    by_name = {c["name"]: c for c in fig6["checkpoints"]}
    for pooled in fig6["arms"]:  # every (training seed, noise seed) metric, seed-major
        s0, s1 = (by_name[pooled["arm"] + suffix]["sigmas"][3]["metrics"] for suffix in ("-full", "-s1-full"))
        assert pooled["sigmas"][3]["metrics"] == s0 + s1
    at_zero, at_last = fig6["comparisons"][0], fig6["comparisons"][-1]
    assert (at_zero["arm_a"], at_zero["arm_b"]) == ("stochgrasp-gauss", "grasp-w-k64")
    assert at_zero["label"] == "sigma=0"
    for seed, pair in enumerate(at_last["per_seed"]):  # paired by noise seed within a training seed
        suffix = "-s1-full" if seed else "-full"
        a, b = by_name["stochgrasp-gauss" + suffix], by_name["grasp-w-k64" + suffix]
        diffs = [x - y for x, y in zip(a["sigmas"][-1]["metrics"], b["sigmas"][-1]["metrics"], strict=True)]
        assert pair["chips"]["diffs"] == pytest.approx(diffs)
    over = [p["chips"]["mean"] for p in at_last["per_seed"]]
    assert at_last["over_seeds"]["mean"] == pytest.approx(statistics.fmean(over))
    assert fig6["sigma_unit"] == "weight units"
    assert "2 training seeds x 2 noise seeds" in (results_dir / "results.md").read_text()
    run_script("fig6_gaussian", monkeypatch, "--model", str(wide_model_dir), "--data-dir", str(tiny_glue),
               "--steps", "2", "--seeds", "2", "--train-seeds", "2", "--relative", "--sigmas", "0,0.5")
    relative = json.loads((results_dir / "results" / "fig6_gaussian-full-wide-relative.json").read_text())
    assert relative["sigma_unit"] == "fraction of each layer's weight std"
    assert relative["checkpoints"][0]["layer_weight_std"] == fig6["checkpoints"][0]["layer_weight_std"]
    # a second run replaces its section instead of appending another
    run_script("k_tradeoff", monkeypatch, "--model", str(wide_model_dir), "--data-dir", str(tiny_glue),
               "--steps", "2", "--seeds", "1")
    assert (results_dir / "results.md").read_text().count("<!-- k_tradeoff-full -->") == 1


def test_fidelity_layers_ablation_and_fit(results_dir, wide_model_dir, tiny_glue, monkeypatch, capsys):
    run_script("fidelity", monkeypatch, "--model", str(wide_model_dir), "--data-dir", str(tiny_glue),
               "--steps", "2", "--seeds", "2", "--layer-chips", "2", "--rows", "24", "--batches", "1",
               "--times", "1d", "--arms")
    out = capsys.readouterr().out
    report = json.loads((results_dir / "results" / "fidelity-full.json").read_text())
    names = analog_layer_names(AutoModelForSequenceClassification.from_pretrained(wide_model_dir))
    drifted = ("programming+drift+compensation", "pcm, all but per-read",
               "pcm-chip, 1 device pair, all but per-read")
    labels = ["DAC+ADC", "static ranges, DAC+ADC, output noise", "output noise", "programming noise",
              *(f"{s} @ 1d" for s in drifted)]
    errors = report["layers"]["errors"]
    assert [(e["setting"], e["layer"]) for e in errors] == [(s, n) for s in labels for n in names]
    assert [s["setting"] for s in report["layers"]["summary"]] == labels
    for e in errors:
        assert len(e["imc"]) == len(e["aihwkit"]) == 2 and min(e["imc"] + e["aihwkit"]) > 0
        if e["setting"] == "DAC+ADC":  # deterministic, and the same computation on both sides
            assert e["imc"][0] == e["imc"][1] and abs(e["rel_diff"]) < 0.02
    steps = report["ablation"]["steps"]
    assert [s["step"].split(" ")[:2] for s in steps] == [
        ["pcm,", "dynamic"], ["static", "input"], ["+", "per-read"], ["+", "2"], ["+", "faults"],
        ["+", "256x256"], ["+", "IR"]]
    assert steps[0]["cost"] == [None] and len(steps[1]["cost"][0]["metrics"]) == 2
    assert all(0 <= m <= 1 for s in steps for p in s["times"] for m in p["metrics"])
    fit = report["fit"]
    assert len(fit) == 2 * (8 * 3 + 1) and all(abs(r["rel_error"]) < 0.10 for r in fit)
    assert "layers within 5%" in out and "read-noise scale" in out
    md = (results_dir / "results.md").read_text()
    assert "<!-- fidelity-full -->" in md and "(c) devices fit round trip" in md
    assert (results_dir / "results" / "fidelity-full.png").exists()
    for device in ("pcm-chip", "pcm"):  # (d): the three arms on pcm-chip beside pcm
        arms = load_result(results_dir / "results" / f"fidelity_arms_{device}-full.json")
        assert arms.device == device and [c.name for c in arms.checkpoints] == [
            "grasp-k32-2steps", "grasp-w-pcm-chip-warm-2steps", "stochgrasp-pcm-chip-warm-2steps"]
        trained = "pcm-chip @ 1h..1y, after 50% digital"
        assert [c.device_trained for c in arms.checkpoints[1:]] == [trained, trained]
        assert [p.label for p in arms.checkpoints[0].points] == ["1d"]


def test_fidelity_layer_errors_are_the_chips():
    """The same seed gives the same error, another seed another, on either simulator's side."""
    torch.manual_seed(0)
    linear, x = torch.nn.Linear(40, 24), torch.randn(8, 40)
    setting = next(s for s in default_settings("1d") if s.name == "programming+drift+compensation")
    for errors in (imc_errors, aihwkit_errors):
        first, again = (errors(linear, "layer", x, setting, seeds) for seeds in ([0, 1], [0]))
        assert first[0][0] == again[0][0] and first[0][0] != first[0][1]


# --- the paired statistic on hand-made numbers ------------------------------------------------------

def curve(name: str, at_1d: list[float], digital: float = 0.9) -> CheckpointCurve:
    return CheckpointCurve(name, f"{name}.pt", "grasp-w", None, digital,
                           (TimePoint.of(1.0, [0.9] * len(at_1d)), TimePoint.of(86400.0, at_1d)))


def test_paired_stats_closed_form():
    diffs = [0.03, 0.01, 0.05]
    s = PairedStats.of(diffs)
    mean, std = 0.03, 0.02
    assert (s.mean, s.std, s.df, s.ahead) == (pytest.approx(mean), pytest.approx(std), 2, 3)
    assert s.t == pytest.approx(mean / (std / math.sqrt(3)))
    assert s.p == pytest.approx(1 - abs(s.t) / math.sqrt(2 + s.t ** 2))  # Student t, 2 df: closed form
    one, flat = PairedStats.of([0.02]), PairedStats.of([0.01, 0.01])
    assert (one.t, one.p, one.df, flat.t, flat.p) == (None, None, 0, None, None)
    with pytest.raises(ValueError):
        PairedStats.of([])


def test_compare_arms_averages_chips_then_tests_over_training_seeds():
    a = {0: [0.80, 0.82, 0.78, 0.84], 1: [0.85, 0.83, 0.81, 0.86], 2: [0.79, 0.80, 0.83, 0.81]}
    b = {0: [0.78, 0.80, 0.79, 0.80], 1: [0.80, 0.82, 0.80, 0.83], 2: [0.80, 0.79, 0.80, 0.79]}
    c = compare_arms({s: curve(f"a{s}", v) for s, v in a.items()},
                     {s: curve(f"b{s}", v, 0.8) for s, v in b.items()}, "a", "b", "1d")
    chip_means_a = [sum(v) / 4 for v in a.values()]
    chip_means_b = [sum(v) / 4 for v in b.values()]
    reference = stats.ttest_rel(chip_means_a, chip_means_b)
    assert c.over_seeds.t == pytest.approx(reference.statistic)
    assert c.over_seeds.p == pytest.approx(reference.pvalue)
    assert c.over_seeds.df == 2 and c.label == "1d"
    for pair, seed in zip(c.per_seed, (0, 1, 2), strict=True):  # chip level: paired by chip
        chip_level = stats.ttest_rel(a[seed], b[seed])
        assert pair.train_seed == seed and pair.chips.t == pytest.approx(chip_level.statistic)
        assert pair.chips.diffs == pytest.approx([x - y for x, y in zip(a[seed], b[seed], strict=True)])
        assert (pair.digital_a, pair.digital_b, pair.mean_a) == (0.9, 0.8, pytest.approx(sum(a[seed]) / 4))
    with pytest.raises(ValueError, match="different training seeds"):
        compare_arms({0: curve("a0", a[0])}, {1: curve("b1", b[1])}, "a", "b", "1d")


def test_pooling_groups_curves_by_arm_and_seed():
    grid = [common.ArmCheckpoint(arm, seed, Path(f"/r/{common.checkpoint_name(arm, seed, 'quick')}.pt"))
            for arm in ("x", "y") for seed in (0, 1)]
    assert [c.path.stem for c in grid] == ["x-quick", "x-s1-quick", "y-quick", "y-s1-quick"]
    values = {"x-quick": [0.1, 0.2], "x-s1-quick": [0.3, 0.4], "y-quick": [0.5, 0.6],
              "y-s1-quick": [0.7, 0.8]}
    result = CompareResult("pcm", 2, "sst2", "accuracy",
                           tuple(curve(name, v, digital=v[0]) for name, v in values.items()))
    arms = common.by_arm(result, grid)
    assert {arm: {s: c.name for s, c in seeds.items()} for arm, seeds in arms.items()} == {
        "x": {0: "x-quick", 1: "x-s1-quick"}, "y": {0: "y-quick", 1: "y-s1-quick"}}
    pooled = common.pool_training_seeds(result, grid)
    assert [c.name for c in pooled.checkpoints] == ["x", "y"]
    assert pooled.checkpoints[1].at("1d").metrics == (0.5, 0.6, 0.7, 0.8)
    assert pooled.checkpoints[1].digital_metric == pytest.approx(0.6)


def test_equivalent_sigma_inverts_the_falling_curve():
    from noise_regime import equivalent_sigma, interpolate

    sigmas, accuracy = (0.0, 0.01, 0.02), (0.9, 0.8, 0.6)
    assert equivalent_sigma(sigmas, accuracy, 0.95) == 0.0  # the device costs less than any noise
    assert equivalent_sigma(sigmas, accuracy, 0.8) == pytest.approx(0.01)
    assert equivalent_sigma(sigmas, accuracy, 0.7) == pytest.approx(0.015)
    assert equivalent_sigma(sigmas, accuracy, 0.5) is None  # beyond the largest sigma measured
    assert equivalent_sigma(sigmas, (0.9, 0.9, 0.7), 0.8) == pytest.approx(0.015)  # flat start
    assert interpolate(sigmas, accuracy, 0.015) == pytest.approx(0.7)
    with pytest.raises(ValueError):
        interpolate(sigmas, accuracy, 0.03)


def test_noise_regime_places_the_device_on_the_gaussian_curve(results_dir, wide_model_dir, tiny_glue,
                                                              monkeypatch, capsys):
    common_args = ("--model", str(wide_model_dir), "--data-dir", str(tiny_glue), "--steps", "2",
                   "--seeds", "2", "--train-seeds", "2")
    run_script("fig6_gaussian", monkeypatch, *common_args, "--sigmas", "0,0.05,0.5")
    run_script("drift_pcm", monkeypatch, *common_args, "--arms", "grasp-w-k64,stochgrasp-gauss",
               "--devices", "pcm-noise2", "--times", "1d,1y", "--label", "replicated")
    assert "4 checkpoints: 4 cached, 0 trained now" in capsys.readouterr().out  # fig6's, the same models
    profile = load_profile(str(results_dir / "results" / "profiles" / "pcm-noise2.yaml"))
    pcm = load_profile("pcm")
    assert profile.programming["scale"] == 2 * pcm.programming["scale"]
    assert profile.read_noise["per_read"] == pytest.approx(2 * pcm.read_noise["per_read"])
    assert (profile.drift, profile.periphery) == (pcm.drift, pcm.periphery)
    run_script("noise_regime", monkeypatch, "--devices", "pcm-noise2")
    results = results_dir / "results"
    out = json.loads((results / "noise_regime-full.json").read_text())
    fig6 = json.loads((results / "fig6_gaussian-full-wide.json").read_text())
    device = load_result(results / "drift_pcm-noise2-full-replicated.json")
    curves = {c.name: c for c in device.checkpoints}
    det_curve = [p["mean"] for p in fig6["arms"][0]["sigmas"]]
    gaps = [c["over_seeds"]["mean"] for c in fig6["comparisons"]]
    assert [p["label"] for p in out["points"]] == ["1d", "1y"]
    det_names, stoch_names = (("grasp-w-k64-full", "grasp-w-k64-s1-full"),
                              ("stochgrasp-gauss-full", "stochgrasp-gauss-s1-full"))
    for point in out["points"]:
        det = [m for n in det_names for m in curves[n].at(point["label"]).metrics]
        assert point["det_accuracy"] == pytest.approx(statistics.fmean(det))
        sigma = point["sigma_eq"]
        if sigma is not None and sigma > 0:  # grasp-w's Gaussian curve reads the device's accuracy there
            assert np_interp(sigma, fig6["sigmas"], det_curve) == pytest.approx(point["det_accuracy"])
            assert point["predicted_gap"] == pytest.approx(np_interp(sigma, fig6["sigmas"], gaps))
        stoch = [curves[n].at(point["label"]).mean for n in stoch_names]
        det_means = [curves[n].at(point["label"]).mean for n in det_names]
        measured = statistics.fmean(a - b for a, b in zip(stoch, det_means, strict=True))
        assert point["measured"]["mean"] == pytest.approx(measured)
    assert "<!-- noise_regime-full -->" in (results_dir / "results.md").read_text()


def np_interp(x, xp, fp):
    import numpy as np

    return float(np.interp(x, xp, fp))


def test_noise_regime_without_its_inputs_is_one_line(results_dir, monkeypatch, capsys):
    noise_regime = __import__("noise_regime")
    monkeypatch.setattr(noise_regime, "RESULTS", common.RESULTS)
    monkeypatch.setattr(sys, "argv", ["noise_regime.py"])
    with pytest.raises(SystemExit) as exit_info:
        cli.run_script(noise_regime.main)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "fig6_gaussian-full-wide.json not found" in err
    assert len(err.strip().splitlines()) == 1


def test_headline_pairs_only_the_arms_that_ran():
    drift_pcm = __import__("drift_pcm")
    ran = dict.fromkeys(("lora-r8", "ahwa-lora-pcm", "grasp-k32", "stochgrasp-gauss", "grasp-w-k64"))
    assert drift_pcm.headline_pairs(ran) == [("stochgrasp-gauss", ["grasp-w-k64", "grasp-k32"]),
                                             ("ahwa-lora-pcm", ["lora-r8"])]
    assert drift_pcm.headline_pairs(dict.fromkeys(("lora-r8", "grasp-w-k64"))) == []
