"""The experiment scripts end to end on the tiny model: JSON in the compare schema, PNG, results.md."""

import json
import statistics
import sys

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from imc_sim.crossbar.mapping import analog_layer_names
from imc_sim.deploy.results import ExperimentTag, load_result
from imc_sim.tasks import get_task

sys.path.insert(0, str(__import__("conftest").REPO / "experiments"))
import common  # noqa: E402
from fidelity_layers import aihwkit_errors, default_settings, imc_errors  # noqa: E402


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


def test_drift_experiment_writes_compare_schema(results_dir, wide_model_dir, tiny_glue, monkeypatch, capsys):
    run_script("drift_pcm", monkeypatch, "--model", str(wide_model_dir), "--data-dir", str(tiny_glue),
               "--steps", "2", "--seeds", "2", "--devices", "reram,pcm")
    out = capsys.readouterr().out
    assert "pcm @ 1d: stochgrasp-pcm" in out and "pcm @ 1y: stochgrasp-pcm-warm" in out
    assert "vs grasp-w-k64" in out and "vs grasp-w-pcm" in out
    pcm = json.loads((results_dir / "results" / "drift_pcm-full.json").read_text())
    assert [c["name"] for c in pcm["checkpoints"]][3] == "stochgrasp-pcm-full"
    assert pcm["checkpoints"][3]["device_trained"] == "pcm @ 1h..1y"
    warm = next(c for c in pcm["checkpoints"] if c["name"] == "stochgrasp-pcm-warm-full")
    assert warm["device_trained"] == "pcm @ 1h..1y, after 50% digital"
    labels = [p["label"] for p in pcm["checkpoints"][0]["times"]]
    assert labels == ["1s", "1h", "1d", "1w", "1mo", "1y", "10y"]
    point = pcm["checkpoints"][0]["times"][0]
    assert {"t_seconds", "metrics", "mean", "std"} <= set(point) and len(point["metrics"]) == 2
    typed = load_result(results_dir / "results" / "drift_pcm-full.json")
    assert typed.experiment == ExperimentTag("drift_pcm-full", quick=False, steps=2)
    assert typed.checkpoints[0].points[0].mean == pytest.approx(sum(point["metrics"]) / 2)
    reram = json.loads((results_dir / "results" / "drift_reram-full.json").read_text())
    assert [p["label"] for p in reram["checkpoints"][0]["times"]] == ["1s", "1d", "2d"]
    md = (results_dir / "results.md").read_text()
    assert "<!-- drift_pcm-full -->" in md and "<!-- /drift_reram-full -->" in md
    assert (results_dir / "results" / "drift_pcm-full.png").exists()


def test_k_tradeoff_and_fig6(results_dir, wide_model_dir, tiny_glue, monkeypatch):
    run_script("k_tradeoff", monkeypatch, "--model", str(wide_model_dir), "--data-dir", str(tiny_glue),
               "--steps", "2", "--seeds", "1")
    md = (results_dir / "results.md").read_text()
    assert "| 8 " in md and "<!-- k_tradeoff-full -->" in md
    run_script("fig6_gaussian", monkeypatch, "--model", str(wide_model_dir), "--data-dir", str(tiny_glue),
               "--steps", "2", "--seeds", "2")
    fig6 = json.loads((results_dir / "results" / "fig6_gaussian-full.json").read_text())
    assert [p["sigma"] for p in fig6["checkpoints"][0]["sigmas"]] == [0.0, 0.0025, 0.005, 0.01, 0.02]
    assert fig6["metric_name"] == get_task("sst2").metric_name == "accuracy"
    for arm in fig6["checkpoints"]:  # no injected noise: every seed sees the digital model
        assert arm["sigmas"][0]["metrics"] == [arm["digital_metric"]] * 2 and arm["sigmas"][0]["std"] == 0
        assert all(0 <= m <= 1 for p in arm["sigmas"] for m in p["metrics"])
        stds = arm["layer_weight_std"].values()
        assert arm["median_layer_weight_std"] == pytest.approx(statistics.median(stds))
    assert fig6["sigma_unit"] == "weight units"
    run_script("fig6_gaussian", monkeypatch, "--model", str(wide_model_dir), "--data-dir", str(tiny_glue),
               "--steps", "2", "--seeds", "2", "--relative", "--sigmas", "0,0.5")
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
            "grasp-k32-2steps", "grasp-w-k64-2steps", "stochgrasp-pcm-2steps"]
        assert arms.checkpoints[2].device_trained == "pcm @ 1h..1y"
        assert [p.label for p in arms.checkpoints[0].points] == ["1d"]


def test_fidelity_layer_errors_are_the_chips():
    """The same seed gives the same error, another seed another, on either simulator's side."""
    torch.manual_seed(0)
    linear, x = torch.nn.Linear(40, 24), torch.randn(8, 40)
    setting = next(s for s in default_settings("1d") if s.name == "programming+drift+compensation")
    for errors in (imc_errors, aihwkit_errors):
        first, again = (errors(linear, "layer", x, setting, seeds) for seeds in ([0, 1], [0]))
        assert first[0][0] == again[0][0] and first[0][0] != first[0][1]
