"""Every numeric option of the CLI refuses values that make no sense (zero, negative, not finite)
with one line on stderr, naming the option, and exit status 2, before any model is loaded."""

from __future__ import annotations

import argparse

import pytest

from imc_sim.cli import main, numbers


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    """(exit status, stderr) of ``imc-sim argv``; argparse's own errors end in SystemExit."""
    try:
        rc = main(argv)
    except SystemExit as exc:
        rc = exc.code
    return rc, capsys.readouterr().err


def assert_one_line_error(rc: int, err: str, option: str) -> None:
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert option in lines[0], lines[0]


SWEEP_CASES = [
    ("--seeds", "0"), ("--seeds", "-1"),
    ("--eval-limit", "0"), ("--eval-limit", "-1"),
    ("--drift", "-1s"), ("--drift", "-3600"), ("--drift", "nan"), ("--drift", "inf"),
    ("--drift", "1e300y"), ("--seeds", "100001"), ("--seeds", str(10**30)),
]


@pytest.mark.parametrize(("option", "value"), SWEEP_CASES)
@pytest.mark.parametrize("command", ["deploy", "compare"])
def test_sweep_numbers(command, option, value, tmp_path, capsys):
    # the checkpoint is never read: the options are checked first (a missing file would fail later)
    argv = [command, str(tmp_path / "never-read.pt"), "--quiet", f"{option}={value}"]
    rc, err = run_cli(argv, capsys)
    assert_one_line_error(rc, err, "drift time" if option == "--drift" else option)


TRAIN_CASES = [
    ("--lr", "0"), ("--lr", "-0.1"), ("--lr", "nan"), ("--lr", "inf"), ("--lr", "1.5"), ("--lr", "1e38"),
    ("--seed", "-1"), ("--seed", str(2**63)), ("--seed", str(2**64)),
    ("--batch-size", "0"), ("--batch-size", "-8"),
    ("--max-steps", "0"), ("--max-steps", "-1"),
    ("--max-length", "0"), ("--max-length", "-1"),
    ("--train-limit", "0"), ("--train-limit", "-1"),
    ("--eval-limit", "0"), ("--eval-limit", "-1"),
    ("--k", "0"), ("--k", "-4"),
    ("--lora-r", "0"), ("--lora-r", "-2"),
    ("--sigma-target", "-1"), ("--sigma-target", "nan"),
    ("--sigma-target", "auto*0"), ("--sigma-target", "auto*-1"), ("--sigma-target", "auto*x"),
    ("--lam", "-0.05"), ("--lam", "nan"),
    ("--device-warmup", "-0.1"), ("--device-warmup", "1"),
]


@pytest.mark.parametrize(("option", "value"), TRAIN_CASES)
def test_train_numbers(option, value, tmp_path, tiny_model_dir, tiny_glue, capsys):
    method = {"--lora-r": "lora", "--sigma-target": "stochgrasp", "--lam": "stochgrasp"}.get(option, "grasp")
    extra = ["--device", "pcm"] if option == "--device-warmup" else []
    if method == "stochgrasp":
        extra += ["--k", "4"]  # the tiny model is 32 wide
    argv = ["train", "--model", str(tiny_model_dir), "--data-dir", str(tiny_glue), "--method", method,
            "--max-steps", "1", "--batch-size", "4", "--out", str(tmp_path / "m.pt"), "--quiet",
            *extra, f"{option}={value}"]
    rc, err = run_cli(argv, capsys)
    assert_one_line_error(rc, err, option)
    assert not (tmp_path / "m.pt").exists()


def test_train_drift_negative(tmp_path, tiny_model_dir, tiny_glue, capsys):
    argv = ["train", "--model", str(tiny_model_dir), "--data-dir", str(tiny_glue), "--device", "pcm",
            "--drift=-1s", "--max-steps", "1", "--out", str(tmp_path / "m.pt"), "--quiet"]
    rc, err = run_cli(argv, capsys)
    assert_one_line_error(rc, err, "drift time")


@pytest.mark.parametrize("drift", [["-1d"], ["1h", "-2d"], ["-0.5h", "1d"]])
@pytest.mark.parametrize("command", ["deploy", "compare", "multitask"])
def test_a_negative_drift_time_says_so_not_that_an_argument_is_missing(command, drift, tmp_path, capsys):
    # argparse alone takes "-1d" for an option: "argument --drift: expected at least one argument"
    rc, err = run_cli([command, str(tmp_path / "never-read.pt"), "--drift", *drift, "--seeds", "1"], capsys)
    negative = next(t for t in drift if t.startswith("-"))
    assert rc == 2 and err == (f"imc-sim: error: drift time {negative!r} is negative; times count from the "
                               "end of programming\n")


def test_negative_values_of_other_options_are_left_to_their_own_checks():
    from imc_sim.cli import negative_drift

    assert negative_drift(["train", "--seed", "-1", "--drift", "1d", "--lr", "-0.5"]) is None


# --- the list and name types of the experiment and benchmark scripts ------------------------------

@pytest.mark.parametrize(("text", "message"), [
    ("", "expected comma-separated names, got ''"),
    ("pcm,,reram", "expected comma-separated names, got 'pcm,,reram'"),
    ("pcm, ", "expected comma-separated names, got 'pcm, '"),
    ("pcm,reram,pcm", "'pcm' is named twice"),
])
def test_names_refuse_empty_and_repeated_entries(text, message):
    with pytest.raises(argparse.ArgumentTypeError) as info:
        numbers.names(text)
    assert str(info.value) == message


def test_names_keep_their_order_without_spaces():
    assert numbers.names("reram, pcm") == ("reram", "pcm")


def test_names_of_a_known_set():
    arms = numbers.names_of({"grasp": 1, "lora": 2})
    assert arms("lora,grasp") == ("lora", "grasp")
    with pytest.raises(argparse.ArgumentTypeError) as info:
        arms("grasp,loar")
    assert str(info.value) == "unknown 'loar' (known: grasp, lora)"


@pytest.mark.parametrize("text", ["", "../x", "a/b", "a\\b", ".hidden", "/abs"])
def test_a_file_stem_cannot_leave_its_folder(text):
    with pytest.raises(argparse.ArgumentTypeError):
        numbers.file_stem(text)


def test_a_file_stem_is_kept_as_given():
    assert numbers.file_stem("replicated-2") == "replicated-2"


@pytest.mark.parametrize(("text", "expected"), [("0,0.0025,0.02", (0.0, 0.0025, 0.02)), ("1e-3", (0.001,))])
def test_non_negative_floats(text, expected):
    assert numbers.non_negative_floats(text) == expected


@pytest.mark.parametrize("text", ["abc", "0.01,-1", "0.01,nan", "0.01,", ""])
def test_non_negative_floats_refuse(text):
    with pytest.raises(argparse.ArgumentTypeError):
        numbers.non_negative_floats(text)


@pytest.mark.parametrize(("minimum", "text", "ok"), [(2, "2", True), (2, "1", False), (0, "0", True),
                                                     (0, "-1", False), (1, "0", False), (1, "1.5", False)])
def test_int_at_least(minimum, text, ok):
    kind = numbers.int_at_least(minimum)
    if ok:
        assert kind(text) == int(text)
    else:
        with pytest.raises(argparse.ArgumentTypeError):
            kind(text)


@pytest.mark.parametrize("parse, text, message", [
    (numbers.positive_int, "x", "expected an integer, got 'x'"),
    (numbers.positive_float, "x", "expected a number, got 'x'"),
    (numbers.positive_float, "inf", "expected a finite number, got 'inf'"),
    (numbers.positive_int, "0", "must be at least 1, got 0"),
    (numbers.positive_float, "0", "must be positive, got 0"),
    (numbers.non_negative_float, "-1", "must be at least 0, got -1"),
    (numbers.random_seed, "-1", "must be from 0 to 2**63 - 1, got -1"),
    (numbers.learning_rate, "2", "must be at most 1, got 2"),
    (numbers.non_negative_floats, "1,,2", "expected comma-separated numbers, got '1,,2'"),
    (numbers.file_stem, "../x",
     "expected a name without '/' or '\\' that does not start with '.', got '../x'"),
])
def test_each_type_says_what_it_expected(parse, text, message):
    """The one line argparse prints after the option's name (the command-line tests check the name)."""
    with pytest.raises(argparse.ArgumentTypeError) as info:
        parse(text)
    assert str(info.value) == message


@pytest.mark.parametrize("parse, text, value", [
    (numbers.random_seed, "0", 0), (numbers.random_seed, "200", 200),
    (numbers.random_seed, str(2**63 - 1), 2**63 - 1), (numbers.learning_rate, "1", 1.0),
    (numbers.non_negative_float, "0", 0.0), (numbers.positive_int, "1", 1),
])
def test_the_edges_of_each_range_are_accepted(parse, text, value):
    assert parse(text) == value
