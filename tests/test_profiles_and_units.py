"""Drift-time units and device-profile validation."""

import dataclasses
import re

import pytest
import yaml

from imc_sim.crossbar.rpu_config import build_rpu_config
from imc_sim.devices.profile import load_profile, profile_from_dict, shipped_profiles
from imc_sim.errors import ImcSimError
from imc_sim.units import format_time, parse_time, parse_time_range, parse_times


@pytest.mark.parametrize("text, seconds", [
    ("1s", 1), ("90s", 90), ("1h", 3600), ("1d", 86400), ("1w", 604800), ("30d", 2592000),
    ("1mo", 2592000), ("1y", 31536000), ("10y", 315360000), ("3600", 3600), ("2.5min", 150),
])
def test_parse_time(text, seconds):
    assert parse_time(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text, message", [
    ("-1h", "negative"), ("soon", "cannot read"),
    ("1fortnight", "^unknown time unit 'fortnight' in '1fortnight'; known: s, min, h, d, w, mo, y$"),
    ("1e400", "^drift time '1e400' is not finite$"),
])
def test_bad_times(text, message):
    with pytest.raises(ImcSimError, match=message):
        parse_time(text)


def test_times_lists_ranges_and_labels():
    assert parse_times(["1d", "1s,1h", "3600"]) == [1.0, 3600.0, 86400.0]
    with pytest.raises(ImcSimError, match="^no drift time given$"):
        parse_times(", ")
    assert parse_time_range("1h..1y") == (3600.0, 31536000.0)
    assert parse_time_range("1d..24h") == parse_time_range("1d") == (86400.0, 86400.0)
    with pytest.raises(ImcSimError, match="starts after it ends"):
        parse_time_range("1y..1h")
    with pytest.raises(ImcSimError, match=r"^cannot read drift time '1d\.\.1y'"):
        parse_time_range("1h..1d..1y")  # the range ends after its first '..'
    with pytest.raises(ImcSimError, match=r"^drift time '2000000y' is beyond 1000000y, far past any device"):
        parse_time_range("1y..2000000y")
    assert parse_time("1000000y") == 1e6 * 365 * 86400
    assert [format_time(t) for t in (1, 90, 3600, 86400, 31536000, 2592000)] == \
        ["1s", "90s", "1h", "1d", "1y", "1mo"]


def test_shipped_profiles_load_and_build():
    names = set(shipped_profiles())
    assert {"pcm", "reram", "fefet", "gaussian", "ideal"} <= names
    for name in names:
        profile = load_profile(name)
        assert profile.source and profile.description
        config = build_rpu_config(profile)
        assert config.noise_model is not None


def raw_pcm() -> dict:
    return yaml.safe_load(shipped_profiles()["pcm"].read_text())


@pytest.mark.parametrize("edit, message", [
    (lambda r: r["conductance"].update(g_max=0),
     "conductance.g_max = 0 is out of range; allowed a number in (0"),
    (lambda r: r["conductance"].update(g_max=-5), "conductance.g_max = -5"),
    (lambda r: r["periphery"].update(adc_bits=0), "periphery.adc_bits = 0 is out of range"),
    (lambda r: r["periphery"].update(dac_bits=8.5),
     "periphery.dac_bits = 8.5 is not an integer; allowed an integer"),
    (lambda r: r["periphery"].update(input_percentile=0.99995),  # aihwkit's quantile, not a percentile
     "periphery.input_percentile = 0.99995 is out of range; allowed a number in [50, 100]"),
    (lambda r: r["conductance"].update(device_per_weight=2),
     "conductance.device_per_weight is not a field of model 'pcm' (known: g_max, devices_per_weight)"),
    (lambda r: r["programming"].update(scale=-1), "programming.scale = -1 is out of range"),
    (lambda r: r["drift"].update(t0="soon"), "drift.t0 = 'soon' is not a number"),
    (lambda r: r["drift"].update(nu=0.1), "drift.nu is not a field of model 'pcm'"),
    (lambda r: r.update(compensation="sometimes"), "compensation = 'sometimes' is not one of"),
    (lambda r: r.update(model="memristor9000"), "model = 'memristor9000' is not one of"),
    (lambda r: r.pop("source"), "field source is missing"),
    (lambda r: r["drift"].update(table={"g": [0, 25], "nu_mean": [0.1], "nu_std": [0.01, 0.01]}),
     "must be a list of at least 2"),
])
def test_invalid_profiles_name_field_value_and_range(edit, message):
    raw = raw_pcm()
    edit(raw)
    with pytest.raises(ImcSimError, match=re.escape(message)):
        profile_from_dict(raw, "x.yaml")


def test_negative_sigma_and_absolute_gaussian_needs_unscaled_weights():
    raw = yaml.safe_load(shipped_profiles()["gaussian"].read_text())
    raw["programming"]["sigma"] = -0.01
    with pytest.raises(ImcSimError, match="programming.sigma = -0.01 is out of range"):
        profile_from_dict(raw)
    raw["programming"]["sigma"] = 0.01
    raw["periphery"]["weight_scaling"] = "per-column"
    with pytest.raises(ImcSimError, match=r"\(sigma in weight units\) needs periphery.weight_scaling: none, "
                                          r"so that tile weights are the model's weights$"):
        profile_from_dict(raw)


def test_unknown_name_malformed_yaml_and_user_file(tmp_path):
    with pytest.raises(ImcSimError, match="unknown device 'memristor'"):
        load_profile("memristor")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nmodel: [pcm\n")
    with pytest.raises(ImcSimError, match="malformed YAML at line"):
        load_profile(str(bad))
    mine = tmp_path / "mine.yaml"
    raw = raw_pcm()
    raw["name"], raw["conductance"]["g_max"] = "my-pcm", 50.0
    mine.write_text(yaml.safe_dump(raw))
    profile = load_profile(str(mine))
    assert profile.name == "my-pcm" and profile.conductance["g_max"] == 50.0


def test_reram_refuses_uncharacterised_times():
    reram = load_profile("reram")
    reram.check_times([1.0, 86400.0, 172800.0])
    with pytest.raises(ImcSimError, match="only characterised at 1s, 1d, 2d; got 1h"):
        reram.check_times([3600.0])


def test_a_negative_time_names_itself():
    with pytest.raises(ImcSimError) as info:
        parse_time(" -1d")
    assert str(info.value) == "drift time ' -1d' is negative; times count from the end of programming"


@pytest.mark.parametrize("name", sorted(shipped_profiles()))
def test_devices_show_prints_a_profile_file_of_the_profile(name, tmp_path, capsys):
    """What ``devices show`` prints above its drift table loads as the same profile (it printed
    devices_per_weight outside ``conductance``, which a profile file refuses)."""
    from imc_sim.cli import main

    assert main(["devices", "show", name, "--plot", str(tmp_path / "show.png")]) == 0
    printed = capsys.readouterr().out.split("\n\nmean g(t)")[0]
    assert profile_from_dict(yaml.safe_load(printed), "printed") == \
        dataclasses.replace(load_profile(name), path="printed")


def test_a_profile_document_holds_every_changed_field():
    changed = load_profile("pcm", {"name": "x", "conductance": {"devices_per_weight": 3},
                                   "periphery": {"dac_bits": "ideal", "adc_bits": 6},
                                   "faults": {"stuck_low": 0.01}})
    document = changed.document()
    assert document["conductance"]["devices_per_weight"] == 3 and "devices_per_weight" not in document
    assert (document["periphery"]["dac_bits"], document["periphery"]["adc_bits"]) == ("ideal", 6)
    assert profile_from_dict(document, changed.path) == changed
