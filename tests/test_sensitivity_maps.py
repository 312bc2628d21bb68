"""Per-layer sensitivity maps: costs, ranking, configurations, measuring, JSON and the table, on
hand-made results with the right answers worked out by hand."""

import json

import pytest
from conftest import ascii_locale, make_tiny_bert

from imc_sim.crossbar.mapping import deploy_model
from imc_sim.deploy.results import TimePoint
from imc_sim.deploy.sensitivity import (
    LayerSensitivity,
    SensitivityMap,
    SensitivityResult,
    configurations,
    format_sensitivity_table,
    load_sensitivity,
    measure_maps,
    save_sensitivity,
    short_names,
)
from imc_sim.devices.profile import load_profile
from imc_sim.errors import ImcSimError
from imc_sim.table import format_table

DAY, YEAR = 86400.0, 365 * 86400.0
PREFIX = "bert.encoder.layer."


def layer(name, *per_time, weights=1024):
    """A layer with one TimePoint per entry of ``per_time`` (seed metrics), at 1d, 1y, ..."""
    return LayerSensitivity(PREFIX + name, weights, tuple(
        TimePoint.of(t, metrics) for t, metrics in zip((DAY, YEAR), per_time, strict=False)))


def result(*maps, all_analog=((0.70, 0.60), (0.50, 0.40)), digital=0.90):
    """Two seeds, two drift times (1d, 1y) unless told."""
    return SensitivityResult("ckpt", "lora", "sst2", "accuracy", "pcm", None, False, 64, 2, digital,
                             tuple(TimePoint.of(t, m) for t, m in zip((DAY, YEAR), all_analog, strict=True)),
                             maps)


def one_analog():
    return SensitivityMap("one-analog", (layer("0.query", (0.85, 0.75), (0.80, 0.60)),
                                         layer("0.key", (0.90, 0.80), (0.50, 0.70), weights=2048)))


def one_digital():
    return SensitivityMap("one-digital", (layer("0.query", (0.75, 0.70), (0.60, 0.40)),
                                          layer("0.key", (0.70, 0.60), (0.55, 0.45), weights=2048)))


def means(costs):
    return [[round(c.mean, 9) for c in row] for row in costs]


def test_one_analog_cost_is_digital_minus_the_metric():
    costs = result(one_analog(), one_digital()).costs("one-analog")
    assert means(costs) == [[0.1, 0.2], [0.05, 0.3]]
    assert [round(v, 9) for v in costs[0][1].metrics] == [0.1, 0.3]


def test_one_digital_cost_is_the_metric_minus_the_same_chips_all_analog_metric():
    costs = result(one_analog(), one_digital()).costs("one-digital")
    assert means(costs) == [[0.075, 0.05], [0.0, 0.05]]
    assert [round(v, 9) for v in costs[0][0].metrics] == [0.05, 0.1]


@pytest.mark.parametrize("broken", [
    SensitivityMap("one-digital", (layer("0.query", (0.75, 0.70)),)),  # one time of two
    SensitivityMap("one-digital", (layer("0.query", (0.75,), (0.60,)),)),  # one seed of two
])
def test_costs_refuse_a_layer_that_does_not_match_the_all_analog_points(broken):
    with pytest.raises(ValueError, match="zip"):
        result(broken).costs("one-digital")


def test_ranking_at_a_later_drift_time_and_a_missing_mode():
    res = result(one_analog())
    assert res.ranking() == ["bert.encoder.layer.0.query", "bert.encoder.layer.0.key"]
    assert res.ranking(time_index=1) == ["bert.encoder.layer.0.key", "bert.encoder.layer.0.query"]
    with pytest.raises(KeyError, match="no one-digital map in this result"):
        res.ranking("one-digital")


def test_configurations_of_each_mode_and_an_unknown_mode():
    names = ["a", "b", "c"]
    assert configurations("one-analog", names) == [["a"], ["b"], ["c"]]
    assert configurations("one-digital", names) == [["b", "c"], ["a", "c"], ["a", "b"]]
    with pytest.raises(ImcSimError) as err:
        configurations("one-layer", names)
    assert str(err.value) == "unknown sensitivity mode 'one-layer' (modes: one-analog, one-digital)"


WRONG = "not an imc-sim sensitivity result of schema 1"


@pytest.mark.parametrize(("change", "message"), [
    ({"schema_version": 2}, f"{WRONG} (kind 'sensitivity', schema_version 2)"),
    ({"kind": "deploy"}, f"{WRONG} (kind 'deploy', schema_version 1)"),
    ({"checkpoint": None}, "not an imc-sim sensitivity result: missing or bad 'checkpoint'"),
])
def test_from_json_names_what_is_wrong(change, message):
    """A ``None`` in ``change`` drops that key."""
    raw = result(one_analog()).to_json()
    raw.update(change)
    raw = {k: v for k, v in raw.items() if v is not None or k == "device_file"}
    with pytest.raises(ImcSimError) as err:
        SensitivityResult.from_json(raw)
    assert str(err.value) == message


def test_save_writes_indented_json_that_loads_back(tmp_path):
    res, path = result(one_analog(), one_digital()), tmp_path / "s.json"
    save_sensitivity(path, res)
    text = path.read_text(encoding="utf-8")
    assert text.startswith('{\n  "schema_version": 1,\n  "kind": "sensitivity",\n') and text.endswith("}\n")
    assert load_sensitivity(path) == res


def test_load_reads_utf8_whatever_the_locale(tmp_path):
    """A hand-written UTF-8 file loads under an ASCII locale too."""
    path, raw = tmp_path / "s.json", result(one_analog()).to_json()
    path.write_text(json.dumps({**raw, "checkpoint": "modèle"}, ensure_ascii=False), encoding="utf-8")
    with ascii_locale():
        loaded = load_sensitivity(path)
    assert loaded.checkpoint == "modèle"


@pytest.mark.parametrize(("text", "message"), [
    ("{nope", ": not JSON (Expecting property name enclosed in double quotes at column 2)"),
    ('{"a":\n [1, 2', ": not JSON (Expecting ',' delimiter at line 2 column 7)"),
    ("[" * 100_000, ": JSON nested too deeply"),
    ("[1, 2]", " is not an imc-sim sensitivity result (a JSON object)"),
])
def test_load_names_a_file_that_is_not_a_result(text, message, tmp_path):
    path = tmp_path / "s.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ImcSimError) as err:
        load_sensitivity(path)
    assert str(err.value) == f"{path}{message}"


@pytest.mark.parametrize(("names", "short"), [
    ([PREFIX + "0.attention.self.query", PREFIX + "1.output.dense"],
     ["0.attention.self.query", "1.output.dense"]),
    (["enc.layer.query", "enc.layer2.key", "enc.layer3.v"], ["layer.query", "layer2.key", "layer3.v"]),
    (["enc.layer.query", "enc.layer2.key"], ["layer.query", "layer2.key"]),
    ([PREFIX + "0.attention.self.query"], ["query"]),
    (["query"], ["query"]),
])
def test_short_names_cut_the_shared_dotted_prefix(names, short):
    assert short_names(names) == short


@pytest.mark.parametrize(("mode", "head", "rows"), [
    ("one-analog", "lost with only it analog", [["query", "1,024", "+10.00 +- 7.07", "+20.00 +- 14.14"],
                                                ["key", "2,048", "+5.00 +- 7.07", "+30.00 +- 14.14"]]),
    ("one-digital", "won back keeping it digital", [["query", "1,024", "+7.50 +- 3.54", "+5.00 +- 7.07"],
                                                    ["key", "2,048", "+0.00 +- 0.00", "+5.00 +- 0.00"]]),
])
def test_sensitivity_table_in_points(mode, head, rows):
    table = format_sensitivity_table(result(one_analog(), one_digital()), mode)
    assert table == (f"{mode}: accuracy points {head} (2 seeds); digital 90.00, all analog 1d 65.00, "
                     "1y 45.00\n"
                     + format_table(["layer", "weights", "1d", "1y"], rows))


def additive_deployment():
    """An ideal tiny BERT whose 'metric' is 1 minus the sum of the analog layers' costs 0.01 * (i + 1)."""
    deployment = deploy_model(make_tiny_bert(), load_profile("ideal"))
    names = list(deployment.layers)
    cost = {name: 0.01 * (i + 1) for i, name in enumerate(names)}

    def measure():
        return 1.0 - sum(cost[n] for n in names if deployment.model.get_submodule(n) is deployment.layers[n])
    return deployment, measure, cost


def test_measure_maps_of_an_additive_metric(capsys):
    deployment, measure, cost = additive_deployment()
    all_analog, maps = measure_maps(deployment, measure, seeds=[0], times=[DAY, YEAR],
                                    modes=["one-analog", "one-digital"])
    total = sum(cost.values())
    assert [p.t_seconds for p in all_analog] == [DAY, YEAR]
    assert all(p.metrics == pytest.approx([1.0 - total]) for p in all_analog)
    res = SensitivityResult("ckpt", "full", "sst2", "accuracy", "ideal", None, False, 8, 1, 1.0,
                            all_analog, maps)
    for mode in ("one-analog", "one-digital"):
        assert [c.mean for row in res.costs(mode) for c in row] == pytest.approx(
            [c for c in cost.values() for _ in (DAY, YEAR)])
    assert [la.weights for la in maps[0].layers][:6] == [1024] * 4 + [2048, 2048]
    assert measure() == pytest.approx(1.0 - total)  # every layer analog afterwards
    last = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert last.startswith("sensitivity layers x seeds: 100%|██████████| 50/50 [")


def test_measure_maps_without_progress_prints_nothing(capsys):
    deployment, measure, _ = additive_deployment()
    measure_maps(deployment, measure, seeds=[0], times=[DAY], modes=["one-analog"], progress=False)
    assert capsys.readouterr().err == ""


def test_a_measure_that_raises_part_way_leaves_every_layer_analog():
    """An evaluation that stops part way (an error, Ctrl-C in a notebook) must not leave the
    deployment with some layers digital: a later measure would read a configuration by mistake."""
    deployment, measure, cost = additive_deployment()
    calls = []

    def failing():
        calls.append(1)
        if len(calls) == 4:  # inside one-analog, three layers in
            raise KeyboardInterrupt
        return measure()
    with pytest.raises(KeyboardInterrupt):
        measure_maps(deployment, failing, seeds=[0], times=[DAY], modes=["one-analog"], progress=False)
    assert measure() == pytest.approx(1.0 - sum(cost.values()))


def perplexity_result():
    """A language model's maps (lower is better), digital perplexity 30, two seeds, 1d and 1y."""
    analog = SensitivityMap("one-analog", (layer("0.query", (31.0, 33.0), (32.0, 34.0)),
                                           layer("0.key", (29.0, 29.5), (30.0, 31.0))))
    digital = SensitivityMap("one-digital", (layer("0.query", (34.0, 36.0), (39.0, 41.0)),
                                             layer("0.key", (30.0, 32.0), (35.0, 36.0))))
    return SensitivityResult("ckpt", "grasp", "lm", "perplexity", "pcm", None, False, 64, 2, 30.0,
                             (TimePoint.of(DAY, (35.0, 37.0)), TimePoint.of(YEAR, (40.0, 42.0))),
                             (analog, digital))


def test_a_perplexity_cost_is_what_the_layer_adds_and_the_costliest_adds_most():
    """The statistics audit: with perplexity (lower is better) the costs had the wrong sign, the
    ranking put the layers that lower perplexity first, and tables showed perplexity x 100."""
    res = perplexity_result()
    assert means(res.costs("one-analog")) == [[2.0, 3.0], [-0.75, 0.5]]
    assert means(res.costs("one-digital")) == [[1.0, 1.0], [5.0, 5.5]]
    assert res.ranking("one-analog") == [PREFIX + "0.query", PREFIX + "0.key"]
    assert res.ranking("one-digital") == [PREFIX + "0.key", PREFIX + "0.query"]
    assert format_sensitivity_table(res, "one-analog") == (
        "one-analog: perplexity added with only it analog (2 seeds); digital 30.00, all analog 1d 36.00, "
        "1y 41.00\n" + format_table(["layer", "weights", "1d", "1y"],
                                    [["query", "1,024", "+2.00 +- 1.41", "+3.00 +- 1.41"],
                                     ["key", "1,024", "-0.75 +- 0.35", "+0.50 +- 0.71"]]))
    assert format_sensitivity_table(res, "one-digital").startswith(
        "one-digital: perplexity taken off keeping it digital (2 seeds)")
