"""Placement and the per-layer sensitivity map: switching layers, kept-digital layers, the CLI."""

import argparse
import json
import re
import sys

import pytest
import torch
from conftest import make_tiny_bert
from test_fake_cuda_deploy import FakeCudaMethods, all_tensors, fake_cuda  # noqa: F401 - the fixture

from imc_sim.cli import build_parser, main
from imc_sim.crossbar.mapping import analog_layer_names, deploy_model
from imc_sim.crossbar.placement import digital_layer_names
from imc_sim.crossbar.tiles import CrossbarLinear
from imc_sim.deploy.chip import Chip
from imc_sim.deploy.placement import (
    Placement,
    PlacementPoint,
    PlacementResult,
    choose_digital,
    format_placement_table,
    placement_curve,
    save_placement,
)
from imc_sim.deploy.results import TimePoint, load_result
from imc_sim.deploy.sensitivity import (
    LayerSensitivity,
    SensitivityMap,
    SensitivityResult,
    load_sensitivity,
    rank_layers,
)
from imc_sim.devices.profile import load_profile
from imc_sim.errors import ImcSimError

DAY = 86400.0


def logits(deployment, batch):
    with torch.no_grad():
        return deployment.model(**batch).logits


def chip_at(deployment, seed=3, t=DAY):
    Chip(deployment, seed).drift_to(t)
    return deployment


# Placement on hand-made metrics: ``measure`` reads which layers of the model are on their tiles.

YEAR = 365 * DAY


def cost_measure(model, costs):
    """A metric of 1 minus the cost of every layer of ``model`` now on its tiles."""
    def measure():
        return 1.0 - sum(costs.get(name, 0.0) for name, m in model.named_modules()
                         if isinstance(m, CrossbarLinear))
    return measure


def choose(model, costs, *, analog_head=False, digital_layers=None, keep=0, progress=False, calibrated=None):
    calibrated = [] if calibrated is None else calibrated
    return choose_digital(model, load_profile("pcm"), Placement(digital_layers, keep), analog_head,
                          cost_measure(model, costs), [0], DAY, calibrated.append, progress)


HEAD = ["bert.pooler.dense", "classifier"]


@pytest.mark.parametrize("analog_head, digital_layers, keep, costs, expected", [
    (False, None, 2, {5: 0.3, 2: 0.2, 7: 0.1}, [2, 5]),
    (False, None, 11, {k: 0.3 for k in range(12) if k != 4}, [k for k in range(12) if k != 4]),
    (True, None, 1, {"classifier": 0.5, 3: 0.4}, ["classifier"]),
    (True, "classifier", 0, {}, ["classifier"]),
    (True, "bert.pooler.dense", 1, {"bert.pooler.dense": 0.5, "classifier": 0.4, 1: 0.3}, HEAD),
])
def test_choose_digital_keeps_the_costliest_layers_in_model_order(analog_head, digital_layers, keep, costs,
                                                                    expected):
    """The N layers that lose most alone on the chip, with the ``--digital-layers`` ones (never
    ranked), up to every analog layer but one; with ``analog_head`` the pooler and head count too."""
    model = make_tiny_bert()
    names = analog_layer_names(model, analog_head)
    costs = {names[k] if isinstance(k, int) else k: v for k, v in costs.items()}
    calibrated = []
    chosen = choose(model, costs, analog_head=analog_head, digital_layers=digital_layers, keep=keep,
                    calibrated=calibrated)
    assert chosen == [names[k] if isinstance(k, int) else k for k in expected]
    assert len(calibrated) == (1 if keep else 0)
    assert not any(isinstance(m, CrossbarLinear) for m in model.modules())  # digital again


def test_placement_progress_bars_follow_progress(capsys):
    """The bars (description and total) go to stderr only with ``progress``."""
    model = make_tiny_bert()
    choose(model, {}, keep=1, progress=False)
    deployment = deploy_model(model, load_profile("pcm"))
    names = list(deployment.layers)
    run = [deployment, names, [0, 1], cost_measure(model, {}), [0], [DAY, YEAR]]
    placement_curve(*run, progress=False)
    assert capsys.readouterr().err == ""
    placement_curve(*run, progress=True)
    choose(make_tiny_bert(), {}, keep=1, progress=True)
    err = capsys.readouterr().err
    assert re.search(r"(^|\r)placement N x seeds: 100%.* 4/4 ", err)
    assert re.search(r"(^|\r)sensitivity layers x seeds: 100%.* 13/13 ", err)


def test_placement_curve_worked_example():
    """Layer 0's query kept digital by the deployment; of the 11 on tiles (32x32 or 32x64) the
    ranking's first N digital: the fraction of all 12 layers' weights on the chip, the metric."""
    model = make_tiny_bert()
    query = "bert.encoder.layer.0.attention.self.query"
    deployment = deploy_model(model, load_profile("pcm"), digital=[query])
    names = list(deployment.layers)
    inter, key1 = "bert.encoder.layer.1.intermediate.dense", "bert.encoder.layer.1.attention.self.key"
    ranking = [inter, key1, *[n for n in names if n not in (inter, key1)]]
    costs = {inter: 0.25, key1: 0.125, names[0]: 0.0625}
    curve = placement_curve(deployment, ranking, [0, 2, 11], cost_measure(model, costs), [0, 1], [DAY])
    total = 2 * (4 * 32 * 32 + 2 * 32 * 64)
    assert [p.keep_digital for p in curve] == [0, 2, 11]
    assert [p.digital_layers for p in curve] == [(), (key1, inter), tuple(names)]
    on_chip = [total - 1024, total - 1024 - 1024 - 2048, 0]
    assert [p.fraction_on_chip for p in curve] == [w / total for w in on_chip]
    assert [[t.metrics for t in p.points] for p in curve] == [[(0.5625, 0.5625)], [(0.9375, 0.9375)],
                                                              [(1.0, 1.0)]]
    assert all(isinstance(m, CrossbarLinear) for m in (model.get_submodule(n) for n in names))


def test_placement_curve_of_no_layers_has_nothing_on_chip():
    """A model without analog layers: 0 of 0 weights on the chip is a fraction of 0."""
    model = torch.nn.Sequential(torch.nn.ReLU())
    deployment = deploy_model(model, load_profile("pcm"), analog_head=True)
    (point,) = placement_curve(deployment, [], [0], lambda: 0.5, [0], [DAY], progress=False)
    assert point.fraction_on_chip == 0.0 and point.points[0].metrics == (0.5,)


def hand_made_result(counts, names=tuple(f"enc.{i // 3}.{'qkv'[i % 3]}" for i in range(9))):
    """A placement result over 9 layers: N = ``counts`` of them digital in model order, at 1d and 1y."""
    layers = tuple(LayerSensitivity(n, 1024, (TimePoint.of(DAY, [0.5]),)) for n in names)
    sensitivity = SensitivityResult("ckpt", "full", "sst2", "accuracy", "pcm", None, False, 10, 1, 0.9,
                                    (TimePoint.of(DAY, [0.5]),), (SensitivityMap("one-analog", layers),))
    metrics = {0: ([0.80, 0.82], [0.70, 0.72]), 4: ([0.9, 0.9], [0.85, 0.85]), 9: ([0.9, 0.9], [0.9, 0.9])}
    curve = tuple(PlacementPoint(n, names[:n], 1 - n / 9 if n != 4 else 0.6,
                                 (TimePoint.of(DAY, metrics[n][0]), TimePoint.of(YEAR, metrics[n][1])))
                  for n in counts)
    return PlacementResult(sensitivity, "1d", curve)


def cells(line):
    return re.split(r"\s{2,}", line)


def test_placement_table_rows_and_newly_digital_layers():
    """Per N: % on chip, mean +- std in points per time, the layers added (three, then a count, past four)."""
    lines = format_placement_table(hand_made_result([0, 4, 9])).splitlines()
    assert cells(lines[0]) == ["kept digital", "% weights on chip", "accuracy @ 1d", "accuracy @ 1y",
                               "newly digital"]
    assert [cells(line) for line in lines[2:]] == [
        ["0", "100.0", "81.00 +- 1.41", "71.00 +- 1.41"],
        ["4", "60.0", "90.00 +- 0.00", "85.00 +- 0.00", "0.q, 0.k, 0.v, 1.q"],
        ["9", "0.0", "90.00 +- 0.00", "90.00 +- 0.00", "1.k, 1.v, 2.q, ... (5 layers)"]]
    assert set(lines[1]) == {"-", " "}


def test_placement_table_in_markdown_of_one_row():
    lines = format_placement_table(hand_made_result([4]), markdown=True).splitlines()
    assert lines[0].startswith("| kept digital ") and lines[1].startswith("|--")
    assert [c.strip() for c in lines[2].strip("|").split("|")] == [
        "4", "60.0", "90.00 +- 0.00", "85.00 +- 0.00", "0.q, 0.k, 0.v, 1.q"]


def test_placement_result_saves_indented_and_loads_back(tmp_path):
    result = hand_made_result([0, 4, 9])
    path = tmp_path / "p.json"
    save_placement(path, result)
    text = path.read_text()
    assert text.startswith('{\n  "schema_version": 1,\n  "kind": "placement",\n') and text.endswith("}\n")
    assert PlacementResult.from_json(json.loads(text)) == result


@pytest.mark.parametrize("kind, version", [("placement", 2), ("sensitivity", 1), (None, None)])
def test_placement_from_json_refuses_other_kinds_and_schemas(kind, version):
    raw = {**hand_made_result([0]).to_json(), "kind": kind, "schema_version": version}
    with pytest.raises(ImcSimError) as info:
        PlacementResult.from_json(raw)
    assert str(info.value) == "not an imc-sim placement result of schema 1"


@pytest.mark.parametrize("drop, message", [
    ("ranked_at", "not an imc-sim placement result: missing or bad 'ranked_at'"),
    ("curve", "not an imc-sim placement result: missing or bad 'curve'")])
def test_placement_from_json_names_a_missing_field(drop, message):
    raw = hand_made_result([0]).to_json()
    del raw[drop]
    with pytest.raises(ImcSimError) as info:
        PlacementResult.from_json(raw)
    assert str(info.value) == message


def test_a_measure_that_raises_part_way_leaves_every_layer_analog():
    model = make_tiny_bert()
    deployment = deploy_model(model, load_profile("ideal"))
    names = list(deployment.layers)

    def failing():
        deployment.use_analog(names[:1])  # what a half-done configuration looks like
        raise RuntimeError("stopped")
    with pytest.raises(RuntimeError):
        placement_curve(deployment, names, [0, 3], failing, [0], [DAY], progress=False)
    assert all(model.get_submodule(n) is deployment.layers[n] for n in names)


@pytest.mark.parametrize("analog", [lambda names: names[2:3], lambda names: names[:2] + names[3:]])
def test_switching_layers_equals_a_fresh_deploy_of_those_layers(analog, token_batch):
    full = chip_at(deploy_model(make_tiny_bert(), load_profile("pcm")))
    names = list(full.layers)
    logits(full, token_batch)  # every layer's read stream advances first
    full.use_analog(analog(names))
    switched = logits(full, token_batch)
    fresh = deploy_model(make_tiny_bert(), load_profile("pcm"),
                         digital=[n for n in names if n not in analog(names)])
    assert torch.equal(switched, logits(chip_at(fresh), token_batch))
    with torch.no_grad():
        assert not torch.equal(switched, make_tiny_bert()(**token_batch).logits)  # the digital model


def test_a_layer_kept_digital_returns_the_digital_layers_output_exactly():
    digital = make_tiny_bert()
    name = "bert.encoder.layer.1.intermediate.dense"
    x = torch.randn(4, 32, generator=torch.Generator().manual_seed(0))
    expected = digital.get_submodule(name)(x)
    kept = chip_at(deploy_model(make_tiny_bert(), load_profile("pcm"), digital=[name]))
    assert name not in kept.layers and kept.kept_digital == {name: 32 * 64}
    assert torch.equal(kept.model.get_submodule(name)(x), expected)
    switched = chip_at(deploy_model(make_tiny_bert(), load_profile("pcm")))
    switched.use_analog([n for n in switched.layers if n != name])
    assert torch.equal(switched.model.get_submodule(name)(x), expected)
    switched.use_analog(list(switched.layers))
    assert not torch.equal(switched.model.get_submodule(name)(x), expected)


def test_a_layers_chip_noise_does_not_depend_on_the_other_layers():
    full = chip_at(deploy_model(make_tiny_bert(), load_profile("pcm")))
    names = list(full.layers)
    half = chip_at(deploy_model(make_tiny_bert(), load_profile("pcm"), digital=names[::2]))
    for name, layer in half.layers.items():
        assert torch.equal(layer.weights, full.layers[name].weights)
        assert torch.equal(layer.scales, full.layers[name].scales)
    summary = half.summary()
    assert summary["analog_layers"] == 6 and summary["placement"]["digital_layers"] == names[::2]
    assert 0 < summary["placement"]["fraction_on_chip"] < 1


def test_patterns_and_presets_resolve_to_analog_layers_only(tiny_bert):
    assert digital_layer_names(tiny_bert, "ff2") == [f"bert.encoder.layer.{i}.output.dense" for i in (0, 1)]
    assert digital_layer_names(tiny_bert, r".*layer\.0\..*query, 1.attention.self.key") == [
        "bert.encoder.layer.0.attention.self.query", "bert.encoder.layer.1.attention.self.key"]


def test_ranking_puts_the_costliest_layer_first():
    def layer(name, metric):
        return LayerSensitivity(name, 1, (TimePoint.of(DAY, [metric, metric]),))
    one_analog = SensitivityMap("one-analog", (layer("a", 0.9), layer("b", 0.5), layer("c", 0.9)))
    one_digital = SensitivityMap("one-digital", (layer("a", 0.6), layer("b", 0.8), layer("c", 0.7)))
    assert rank_layers(one_analog) == ["b", "a", "c"]
    assert rank_layers(one_digital) == ["b", "c", "a"]


def run_cli(*argv):
    return main([*argv, "--quiet"])


def test_sensitivity_under_ideal_is_zero_and_writes_json_and_heatmap(tiny_checkpoint, tiny_glue, tmp_path,
                                                                     capsys):
    out, png = tmp_path / "s.json", tmp_path / "s.png"
    assert run_cli("sensitivity", str(tiny_checkpoint), "--data-dir", str(tiny_glue), "--device", "ideal",
                   "--drift", "1d", "1y", "--seeds", "1", "--json", str(out), "--plot", str(png)) == 0
    printed = capsys.readouterr().out
    assert "one-analog" in printed and "one-digital" in printed and "0.attention.self.query" in printed
    result = load_sensitivity(out)
    assert result.to_json() == json.loads(out.read_text())
    assert [m.mode for m in result.maps] == ["one-analog", "one-digital"] and result.labels == ["1d", "1y"]
    for m in result.maps:
        assert len(m.layers) == 12
        assert all(c.mean == 0.0 and c.std == 0.0 for row in result.costs(m.mode) for c in row)
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_sensitivity_on_pcm_one_mode(tiny_checkpoint, tiny_glue, tmp_path):
    out = tmp_path / "s.json"
    assert run_cli("sensitivity", str(tiny_checkpoint), "--data-dir", str(tiny_glue), "--device", "pcm",
                   "--drift", "1d", "--seeds", "1", "--mode", "one-digital", "--json", str(out)) == 0
    result = load_sensitivity(out)
    assert [m.mode for m in result.maps] == ["one-digital"] and len(result.all_analog[0].metrics) == 1


@pytest.mark.parametrize("command", ["sensitivity", "deploy"])
def test_without_data_the_error_names_only_options_the_command_takes(command, tiny_checkpoint, tmp_path,
                                                                     monkeypatch, capsys):
    """No --data-dir, no $IMC_SIM_DATA, no datasets package: one line that suggests --data-dir and
    --validation-file, options the command has (not train's --train-file), and nothing written."""
    monkeypatch.delenv("IMC_SIM_DATA", raising=False)
    monkeypatch.setitem(sys.modules, "datasets", None)
    out = tmp_path / "r.json"
    assert run_cli(command, str(tiny_checkpoint), "--device", "pcm", "--drift", "1d", "--seeds", "1",
                   "--json", str(out)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("imc-sim: error: no data for sst2: ") and len(err.splitlines()) == 1
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    named = set(re.findall(r"--[a-z][a-z-]*", err))
    assert named == {"--data-dir", "--validation-file"}
    assert named <= set(sub.choices[command]._option_string_actions) and not out.exists()


def deploy(ckpt, glue, out, *extra, seeds="2"):
    return run_cli("deploy", str(ckpt), "--data-dir", str(glue), "--device", "pcm", "--drift", "1d",
                   "--seeds", seeds, "--json", str(out), *extra)


def test_keep_digital_zero_equals_a_plain_deploy(tiny_checkpoint, tiny_glue, tmp_path):
    assert deploy(tiny_checkpoint, tiny_glue, tmp_path / "plain.json") == 0
    assert deploy(tiny_checkpoint, tiny_glue, tmp_path / "zero.json", "--keep-digital", "0") == 0
    plain, zero = (json.loads((tmp_path / f).read_text()) for f in ("plain.json", "zero.json"))
    assert zero == plain and "placement" not in zero["mapping"]


def test_keep_digital_and_digital_layers_are_reported(tiny_checkpoint, tiny_glue, tmp_path, capsys):
    out = tmp_path / "kept.json"
    assert deploy(tiny_checkpoint, tiny_glue, out, "--digital-layers", "ff2", "--keep-digital", "3",
                  seeds="1") == 0
    assert "5 layers kept digital" in capsys.readouterr().out
    mapping = load_result(out).curve.mapping
    assert mapping.analog_layers == 7 and len(mapping.placement.digital_layers) == 5
    assert {"bert.encoder.layer.0.output.dense", "bert.encoder.layer.1.output.dense"} <= set(
        mapping.placement.digital_layers)
    assert mapping.placement.fraction_on_chip == pytest.approx(mapping.weights_on_nvm / (
        2 * (4 * 32 * 32 + 2 * 32 * 64)))


@pytest.mark.parametrize("extra, message", [
    (["--digital-layers", "nothing"], "--digital-layers pattern 'nothing' matches no analog layer"),
    (["--digital-layers", "classifier"], "matches no analog layer"),
    (["--digital-layers", " , "], "empty --digital-layers"),
    (["--keep-digital", "-1"], "--keep-digital must be 0 or more, got -1"),
    (["--keep-digital", "13"],
     "--keep-digital 13 leaves none of the 12 analog layers on the chip (at most 11)"),
    (["--keep-digital", "12"], "--keep-digital 12 leaves none of the 12 analog layers on the chip"),
    (["--digital-layers", "ff2", "--keep-digital", "10"], "--keep-digital 10 leaves none of the 10 analog"),
    (["--digital-layers", "all-linear"],
     "--digital-layers all-linear keeps every analog layer digital: nothing left to map to tiles"),
])
def test_bad_placement_is_one_line_exit_2(extra, message, tiny_checkpoint, tiny_glue, tmp_path, capsys):
    out = tmp_path / "out.json"
    assert deploy(tiny_checkpoint, tiny_glue, out, *extra) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


def test_placement_experiment_writes_curve_json_png_and_section(tiny_checkpoint, tiny_glue, tmp_path,
                                                                 monkeypatch):
    import sys

    sys.path.insert(0, str(__import__("conftest").REPO / "experiments"))
    import common
    import placement

    from imc_sim.deploy.placement import PlacementResult
    monkeypatch.setattr(common, "RESULTS_MD", tmp_path / "results.md")
    monkeypatch.setattr(placement, "RESULTS", tmp_path)
    monkeypatch.setattr(sys, "argv", ["placement", "--checkpoint", str(tiny_checkpoint), "--data-dir",
                                      str(tiny_glue), "--drift", "1d", "1y", "--seeds", "1", "--step", "5",
                                      "--name", "p"])
    placement.main()
    raw = json.loads((tmp_path / "p.json").read_text())
    result = PlacementResult.from_json(raw)
    assert result.to_json() == raw
    assert [p.keep_digital for p in result.curve] == [0, 5, 10, 12]
    assert result.curve[0].fraction_on_chip == 1.0 and result.curve[-1].fraction_on_chip == 0.0
    names, top5 = [la.name for la in result.sensitivity.maps[0].layers], set(result.sensitivity.ranking()[:5])
    assert list(result.curve[1].digital_layers) == [n for n in names if n in top5]
    every_digital = result.curve[-1].points
    assert all(p.metrics == (result.sensitivity.digital_metric,) for p in every_digital)
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    assert "<!-- p -->" in (tmp_path / "results.md").read_text()


def test_switched_layers_run_on_the_models_device(fake_cuda):  # noqa: F811 - the imported fixture
    """After ``model.to(device)`` a layer switched digital follows its tiles (meta: a real device
    switch on any build), and on (fake) CUDA switching mixes no devices."""
    full = chip_at(deploy_model(make_tiny_bert(), load_profile("pcm")))
    names = list(full.layers)
    full.model.to("meta")
    full.use_analog(names[:1])
    assert {t.device.type for t in all_tensors(full.model).values()} == {"meta"}

    mode, to_cuda = fake_cuda
    deployment = deploy_model(make_tiny_bert(), load_profile("pcm"))
    with mode, FakeCudaMethods():
        deployment.model._apply(to_cuda)
        for original in deployment.originals.values():
            original._apply(to_cuda)
        chip_at(deployment)
        ids = torch.ones(3, 7, dtype=torch.long, device="cuda")
        for analog in (names[:1], names[1:], []):
            deployment.use_analog(analog)
            out = logits(deployment, {"input_ids": ids, "attention_mask": torch.ones_like(ids)})
            assert out.shape == (3, 2) and out.device.type == "cuda"
        assert {t.device.type for t in all_tensors(deployment.model).values()} == {"cuda"}


def test_digital_layers_from_python_may_be_a_list():
    """``Placement(digital_layers=["ff2", "query"])`` is the patterns ``ff2,query`` (it used to fail
    with an AttributeError on the list)."""
    model = make_tiny_bert()
    listed = choose(model, {}, digital_layers=["ff2", "query"])
    assert listed == choose(model, {}, digital_layers="ff2,query") and len(listed) == 4
    assert Placement(["ff2"]).digital_layers == "ff2"


def test_choose_digital_with_perplexity_keeps_the_layers_that_add_most():
    """Lower is better: a 'perplexity' of 30 plus each analog layer's cost; the layers that add
    most are kept digital (the statistics audit: they were the ones that lowered it)."""
    model = make_tiny_bert()
    names = analog_layer_names(model, False)
    costs = {names[5]: -0.3, names[2]: 0.2, names[7]: 0.5}

    def perplexity():
        return 30.0 + sum(costs.get(name, 0.0) for name, m in model.named_modules()
                          if isinstance(m, CrossbarLinear))

    chosen = choose_digital(model, load_profile("pcm"), Placement(None, 2), False, perplexity, [0], DAY,
                            lambda deployment: None, False, higher_is_better=False)
    assert chosen == [names[2], names[7]]
