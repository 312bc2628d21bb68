"""Every numeric option of the CLI refuses values that make no sense (zero, negative, not finite)
with one line on stderr, naming the option, and exit status 2, before any model is loaded."""

from __future__ import annotations

import pytest

from imc_sim.cli import main


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
