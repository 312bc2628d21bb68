"""Typed deploy / compare results: JSON round trips, and the schema-0 files on disk still load."""

import json

import pytest
from conftest import REPO

from imc_sim.deploy.placement import PlacementResult
from imc_sim.deploy.results import (
    SCHEMA_VERSION,
    CheckpointCurve,
    CompareResult,
    DeployResult,
    ExperimentTag,
    MappingSummary,
    SeedSummary,
    TimePoint,
    load_result,
    save_result,
)
from imc_sim.errors import ImcSimError

MAPPING = MappingSummary("pcm", 12, 12, "512x512", 12288, 4000)


def curve(name="a", mapping=MAPPING):
    points = (TimePoint.of(1.0, [0.5, 0.75]), TimePoint.of(86400.0, [0.25, 0.5, 0.75]))
    return CheckpointCurve(name, f"/ckpt/{name}.pt", "grasp", "pcm @ 1h..1y", 0.8, points, mapping)


def test_time_point_summary_values():
    p = TimePoint.of(86400.0, [0.25, 0.5, 0.75])
    assert (p.label, p.mean, p.min, p.metrics) == ("1d", 0.5, 0.25, (0.25, 0.5, 0.75))
    assert p.std == pytest.approx(0.25)  # sample std (n - 1)
    assert SeedSummary.of([0.7]).std == 0.0
    assert SeedSummary.of([0.5, 0.75]).std == pytest.approx(0.125 * 2**0.5)  # two chips have a spread
    with pytest.raises(ValueError, match="^a summary needs at least one value$"):
        SeedSummary.of([])


def test_deploy_result_round_trip(tmp_path):
    result = DeployResult(curve(), "sst2", "accuracy", "pcm", "/p/pcm.yaml", False, 872, 3)
    raw = json.loads(json.dumps(result.to_json()))
    assert raw["schema_version"] == SCHEMA_VERSION and raw["checkpoint"] == "/ckpt/a.pt"
    assert raw["times"][1] == {"t_seconds": 86400.0, "label": "1d", "metrics": [0.25, 0.5, 0.75],
                               "mean": 0.5, "std": pytest.approx(0.25), "min": 0.25}
    assert raw["mapping"]["weights_on_nvm"] == 12288
    assert DeployResult.from_json(raw) == result
    save_result(tmp_path / "r.json", result)
    assert load_result(tmp_path / "r.json") == result


def test_compare_result_round_trip_with_experiment_tag(tmp_path):
    result = CompareResult("pcm", 3, "sst2", "accuracy", (curve("a"), curve("b", None)),
                           ExperimentTag("drift_pcm-full", False, 1500))
    raw = json.loads(json.dumps(result.to_json()))
    assert (raw["experiment"], raw["quick"], raw["steps"]) == ("drift_pcm-full", False, 1500)
    assert raw["checkpoints"][1]["mapping"] is None
    assert CompareResult.from_json(raw) == result
    assert result.by_name("b").at("1d").mean == 0.5
    assert [result.by_name(n).name for n in ("b", "a")] == ["b", "a"]
    with pytest.raises(KeyError, match="no checkpoint named c"):
        result.by_name("c")
    with pytest.raises(KeyError, match="a has no point at 1y"):
        result.by_name("a").at("1y")
    save_result(tmp_path / "c.json", result)
    assert (tmp_path / "c.json").read_text().startswith('{\n  "schema_version": ')  # indented for people
    assert load_result(tmp_path / "c.json") == result


def test_schema0_deploy_file_converts(tmp_path):
    """What ``imc-sim deploy --json`` wrote before the schema version: no name, no device_trained."""
    old = DeployResult(curve(), "sst2", "accuracy", "pcm", "/p/pcm.yaml", True, 8, 2).to_json()
    for key in ("schema_version", "name", "device_trained"):
        del old[key]
    (tmp_path / "old.json").write_text(json.dumps(old))
    loaded = load_result(tmp_path / "old.json")
    assert isinstance(loaded, DeployResult) and loaded.analog_head
    assert loaded.curve.name == "grasp (/ckpt/a.pt)" and loaded.curve.device_trained is None
    assert loaded.curve.points == curve().points
    assert {k: v for k, v in loaded.to_json().items() if k in old} == old


def test_schema0_deploy_file_without_mapping_or_analog_head_converts(tmp_path):
    """The oldest deploy files recorded neither: a digital head, no mapping, and both written back."""
    old = DeployResult(curve(mapping=None), "sst2", "accuracy", "pcm", None, False, 8, 2).to_json()
    for key in ("schema_version", "name", "device_trained", "analog_head", "mapping"):
        del old[key]
    (tmp_path / "old.json").write_text(json.dumps(old))
    loaded = load_result(tmp_path / "old.json")
    assert loaded.analog_head is False and loaded.curve.mapping is None
    written = loaded.to_json()
    assert written["analog_head"] is False and written["mapping"] is None


# the committed results: compare files written before the schema (no schema_version) are read as
# schema 0; files written since carry schema_version and load as they are; placement curves load
# as placement results; fig6_gaussian's, fidelity's, noise_regime's, error_structure's,
# gap_decomposition's and the drift headlines' (paired comparisons) files have their own layouts
OWN_LAYOUTS = ("fidelity-", "noise_regime-", "error_structure-", "gap_decomposition-")
PLACEMENT_FILES = sorted((REPO / "experiments" / "results").glob("placement_*.json"))
RESULT_FILES = sorted(p for p in (REPO / "experiments" / "results").glob("*.json")
                      if "fig6" not in p.name and not p.name.startswith(OWN_LAYOUTS)
                      and "-headline" not in p.name and p not in PLACEMENT_FILES)
OLD_COMPARE_FILES = [p for p in RESULT_FILES if "schema_version" not in json.loads(p.read_text())]
NEW_RESULT_FILES = [p for p in RESULT_FILES if p not in OLD_COMPARE_FILES]


@pytest.mark.parametrize("path", NEW_RESULT_FILES, ids=lambda p: p.name)
def test_schema_versioned_experiment_files_load_and_round_trip(path):
    raw = json.loads(path.read_text())
    assert raw["schema_version"] == SCHEMA_VERSION
    assert load_result(path).to_json() == raw


@pytest.mark.parametrize("path", PLACEMENT_FILES, ids=lambda p: p.name)
def test_placement_files_load_and_round_trip(path):
    raw = json.loads(path.read_text())
    assert PlacementResult.from_json(raw).to_json() == raw


@pytest.mark.parametrize("path", OLD_COMPARE_FILES, ids=lambda p: p.name)
def test_schema0_experiment_files_load_unchanged(path):
    raw = json.loads(path.read_text())
    assert "schema_version" not in raw  # written before the schema; this test reads them as schema 0
    result = load_result(path)
    assert isinstance(result, CompareResult) and result.experiment.name == raw["experiment"]
    assert len(result.checkpoints) == len(raw["checkpoints"])
    first, raw_first = result.checkpoints[0], raw["checkpoints"][0]
    assert first.points[0].metrics == tuple(raw_first["times"][0]["metrics"])
    converted = result.to_json()
    assert converted["schema_version"] == SCHEMA_VERSION
    for c, raw_c in zip(converted["checkpoints"], raw["checkpoints"], strict=True):
        assert c.pop("mapping") is None and c == raw_c  # every schema-0 field, value for value
    converted.pop("schema_version")
    converted.pop("checkpoints")
    assert converted == {k: v for k, v in raw.items() if k != "checkpoints"}


def test_benchmark_sweep_points_load():
    raw = json.loads((REPO / "benchmarks" / "results" / "analog_eval.json").read_text())
    points = [TimePoint.from_json(p) for p in raw["times"]]
    assert [p.label for p in points] == ["1s", "1h", "1d", "1w", "1mo", "1y", "10y"]
    assert [p.to_json() for p in points] == raw["times"]
    assert MappingSummary.from_json(raw["mapping"]).to_json() == raw["mapping"]


@pytest.mark.parametrize("content, message", [
    ({"schema_version": SCHEMA_VERSION + 1, "checkpoints": []}, "unknown result schema_version"),
    ({"device": "pcm"}, "not an imc-sim deploy or compare result"),
    ([1, 2], "not an imc-sim result"),
])
def test_bad_result_files_are_one_line_errors(content, message, tmp_path):
    (tmp_path / "bad.json").write_text(json.dumps(content))
    with pytest.raises(ImcSimError, match=message):
        load_result(tmp_path / "bad.json")


def test_a_result_file_that_is_not_json_says_where_it_stops(tmp_path):
    (tmp_path / "cut.json").write_text('{"device": ')
    with pytest.raises(ImcSimError, match=r"cut\.json: not JSON \(Expecting value at column 12\)$"):
        load_result(tmp_path / "cut.json")


def test_one_seed_has_no_spread_to_show():
    """The statistics audit: one seed printed '73.27 +- 0.00', as if chips agreed."""
    from imc_sim.deploy.run import format_deploy_table

    one = CheckpointCurve("a", "/a.pt", "grasp", None, 0.8, (TimePoint.of(86400.0, [0.7327]),), MAPPING)
    two = CheckpointCurve("a", "/a.pt", "grasp", None, 0.8, (TimePoint.of(86400.0, [0.7, 0.7]),), MAPPING)
    def table(curve, seeds):
        return format_deploy_table(DeployResult(curve, "sst2", "accuracy", "pcm", None, False, 9, seeds))

    assert "73.27 +- n/a" in table(one, 1) and "70.00 +- 0.00" in table(two, 2)


@pytest.mark.parametrize("seeds, label", [([0.7, 0.8], "bars: +-1 std over 2 chips"),
                                           ([0.7], "one chip: no bars")])
def test_the_drift_plot_says_what_its_bars_are(seeds, label, tmp_path, monkeypatch):
    from imc_sim.deploy import plots

    labels = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: labels.append(fig.axes[0].get_ylabel()))
    one = CheckpointCurve("a", "/a.pt", "grasp", None, 0.8, (TimePoint.of(86400.0, seeds),), MAPPING)
    plots.plot_drift([one], tmp_path / "p.png", "title", "accuracy")
    assert labels == [f"accuracy (%)  (dashed: digital; {label})"]
