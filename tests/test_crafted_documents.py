"""Files that parse yet are built to break a reader (found by a black-box audit of the CLI, session
27): nesting past Python's recursion limit, integers past a float, keys of mixed YAML types, CSV
fields past the csv module's limit. Each is one line naming the file, never a traceback."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from conftest import write_plan_file

from imc_sim.data.files import read_table
from imc_sim.deploy.plan import load_plan
from imc_sim.devices.measurements import read_measurements
from imc_sim.devices.profile import load_profile, shipped_profiles
from imc_sim.documents import MalformedDocument, parse_json, parse_yaml, real_number, sorted_keys
from imc_sim.errors import ImcSimError

DEEP = 100_000  # far past Python's recursion limit (1,000)
HUGE = "1" + "0" * 400  # an integer no float holds


def error(call, *args) -> str:
    with pytest.raises(ImcSimError) as info:
        call(*args)
    text = str(info.value)
    assert "\n" not in text
    return text


@pytest.mark.parametrize("text, reason", [
    ("a: [1, 2\nb: 3\n", "malformed YAML at line 2"),
    ("[" * DEEP + "]" * DEEP, "YAML nested too deeply"),
    ("a: 1\nb: 2\na: 3\n", "malformed YAML (key 'a' written twice, at lines 1 and 3)"),  # safe_load keeps 3
    ("a: {x: 1, x: 2}\n", "malformed YAML (key 'x' written twice, at line 1)"),
], ids=["unclosed", "deep", "key twice", "key twice in a flow mapping"])
def test_yaml_that_does_not_parse_is_one_reason(text, reason):
    with pytest.raises(MalformedDocument) as info:
        parse_yaml(text)
    assert str(info.value) == reason


@pytest.mark.parametrize("text, reason", [
    ('{"a": }', "not JSON (Expecting value at column 7)"),
    ('{"a": }\n', "not JSON (Expecting value at column 7)"),  # one line with its newline
    ('{"a": 1,\n"b": }', "not JSON (Expecting value at line 2 column 6)"),
    ("[" * DEEP, "JSON nested too deeply"),
    ('{"a": 1, "b": {"a": 2, "a": 3}}', "not JSON (key 'a' written twice in one object)"),
], ids=["one line", "one line and newline", "two lines", "deep", "key twice"])
def test_json_that_does_not_parse_is_one_reason(text, reason):
    with pytest.raises(MalformedDocument) as info:
        parse_json(text)
    assert str(info.value) == reason


def test_keys_repeated_apart_or_merged_from_an_anchor_are_not_written_twice():
    assert parse_yaml("a: {x: 1}\nb: {x: 2}\n") == {"a": {"x": 1}, "b": {"x": 2}}
    assert parse_yaml("base: &b {x: 1, y: 1}\nd:\n  <<: *b\n  x: 2\n") == {"base": {"x": 1, "y": 1},
                                                                           "d": {"x": 2, "y": 1}}
    assert parse_json('[{"a": 1}, {"a": 2}]') == [{"a": 1}, {"a": 2}]


def test_integers_past_the_digit_limit_and_impossible_dates_are_malformed():
    limit = "Exceeds the limit (4300 digits) for integer string conversion: value has 5000 digits"
    with pytest.raises(MalformedDocument) as info:
        parse_json("1" * 5000)
    assert str(info.value) == f"not JSON ({limit})"
    with pytest.raises(MalformedDocument) as info:
        parse_yaml("g_max: " + "1" * 5000)
    assert str(info.value) == f"malformed YAML ({limit})"
    with pytest.raises(MalformedDocument) as info:
        parse_yaml("measured: 2020-02-30")
    assert str(info.value) == "malformed YAML (day is out of range for month)"


@pytest.mark.parametrize("value, expected", [
    (3, 3.0), (2.5, 2.5), (-1e300, -1e300), (int(HUGE), None), (math.nan, None), (math.inf, None),
    (True, None), ("3", None), (None, None), ([1], None),
])
def test_real_number_is_a_finite_float_or_none(value, expected):
    assert real_number(value) == expected


def test_sorted_keys_orders_keys_of_mixed_types_as_text():
    assert sorted_keys({"foo", 1, None, 2.5}) == ["1", "2.5", "None", "foo"]


def profile_text(**replace: str) -> str:
    """pcm.yaml with lines starting with each key (after indentation) replaced."""
    lines = shipped_profiles()["pcm"].read_text(encoding="utf-8").splitlines()
    for key, line in replace.items():
        hits = [i for i, old in enumerate(lines) if old.strip().startswith(f"{key}:")]
        assert len(hits) == 1, key
        lines[hits[0]] = line
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("text, message", [
    (lambda: profile_text(g_max=f"  g_max: {HUGE}"),
     "field conductance.g_max = an integer of 401 digits is out of range; allowed a number in (0, 10000]"),
    (lambda: profile_text() + "1: 2\nfoo: 3\n", "field 1 is not a profile field"),
    (lambda: profile_text(g_max="  g_max: 25.0\n  7: 1"),
     "field conductance.7 is not a field of model 'pcm'"),
    (lambda: profile_text(g_max="  g_max: 25.0\n  g_max: 30.0"),
     "malformed YAML (key 'g_max' written twice, at lines"),
    (lambda: profile_text(inp_bound="  inp_bound: 1.0e-300"),
     "field periphery.inp_bound = 1e-300 is out of range; allowed a number in [0.001, 1e+06]"),
    (lambda: "name: " + "[" * DEEP, "YAML nested too deeply"),
    (lambda: b"\xff\xfe binary", "not a text file"),
], ids=["huge integer", "mixed keys", "integer key in a section", "key twice", "tiny input bound", "deep",
        "binary"])
def test_a_crafted_profile_is_one_line(text, message, tmp_path):
    path = tmp_path / "crafted.yaml"
    content = text()
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert error(load_profile, str(path)).startswith(f"profile {path}: {message}")


@pytest.mark.parametrize("extra, message", [
    (b"1: 2\nfoo: 3\n", "1 is not a plan field"),  # an integer key beside text keys
    (b"eval_limit: " + b"[" * DEEP + b"\n", "YAML nested too deeply"),
    (b"\xff\xfe\n", "not a text file"),
], ids=["mixed keys", "deep", "binary"])
def test_a_crafted_plan_is_one_line(extra, message, tmp_path):
    path = write_plan_file(tmp_path, checkpoints=["gone.pt"])
    path.write_bytes(path.read_bytes() + extra)
    assert error(load_plan, path).startswith(f"plan {path}: {message}")


def test_deep_json_lines_data_is_one_line(tmp_path):
    path = tmp_path / "dev.jsonl"
    path.write_text('{"sentence": "fine", "label": 1}\n' + "[" * DEEP + "\n")
    assert error(read_table, Path(path)) == (
        f"{path}:2: JSON nested too deeply; expected one object or array per line")


@pytest.mark.parametrize("content, message", [
    ('{"g_target": ' + HUGE + ', "time": 1, "g_read": 4.9}\n',
     f"line 1: column g_target = {HUGE[:40]}... is beyond any float"),
    ('{"g_target": 5, "time": 1, "g_read": 4.9, "device": ' + "[" * DEEP + "}\n",
     "line 1 is JSON nested too deeply"),
    ("g_target,time,g_read\n5,1,4.9\n5,2," + "9" * 200_000 + "\n",
     "line 3 is not valid CSV (field larger than field limit (131072))"),
], ids=["huge integer", "deep", "huge field"])
def test_crafted_measurements_are_one_line(content, message, tmp_path):
    path = tmp_path / "m.csv"
    path.write_text(content)
    assert error(read_measurements, path) == f"measurements {path}: {message}"
