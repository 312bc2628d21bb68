"""The experiments' and benchmarks' entry point (`imc_sim.cli.run_script`): a user error is one
line and exit 2, as in the command line; before session 28 four experiment scripts and eight
benchmarks ended every such error in a traceback, and `analog_eval.py --out` could replace its
own input checkpoint."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO, file_sha256

from imc_sim.cli import run_script
from imc_sim.errors import ImcSimError


@pytest.mark.parametrize("error, shown", [
    (ImcSimError("no checkpoint file x.pt"), "no checkpoint file x.pt"),
    (IsADirectoryError(21, "Is a directory", "out.json"), "[Errno 21] Is a directory: 'out.json'"),
])
def test_a_user_error_is_one_line_and_exit_2(error, shown, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["placement.py"])

    def main():
        raise error

    with pytest.raises(SystemExit) as exited:
        run_script(main)
    assert exited.value.code == 2
    assert capsys.readouterr().err == f"placement.py: error: {shown}\n"


def test_a_bug_still_shows_its_traceback():
    def main():
        raise ZeroDivisionError("a bug, not a user error")

    with pytest.raises(ZeroDivisionError):
        run_script(main)


def test_a_benchmark_refuses_to_write_over_its_input_checkpoint(tiny_checkpoint, tmp_path):
    before = file_sha256(tiny_checkpoint)
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "analog_eval.py"), "--checkpoint",
                           str(tiny_checkpoint), "--out", str(tiny_checkpoint), "--seeds", "1"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stderr == (
        f"analog_eval.py: error: --out {tiny_checkpoint} names the same file as --checkpoint "
        f"{tiny_checkpoint}; give another file name\n")
    assert file_sha256(tiny_checkpoint) == before


@pytest.mark.parametrize("script, argv, message", [
    ("analog_eval", ["--repeats", "0"], "argument --repeats: must be at least 1, got 0"),
    ("analog_eval", ["--device", "memristor", "--checkpoint", "never-read.pt"], "memristor"),
    ("compiled_passes", ["--rows", "0"], "argument --rows: must be at least 1, got 0"),
    ("device_training", ["--rounds", "0"], "argument --rounds: must be at least 1, got 0"),
    ("device_training", ["--device", "memristor"], "memristor"),
    ("device_training", ["--drift", "1y..1h"], "1y..1h"),
    ("gpu_scale", ["--batches", "0"], "argument --batches: must be at least 1, got 0"),
    ("gpu_scale", ["--steps", "-1"], "argument --steps: must be at least 0, got -1"),
    ("gpu_scale", ["--device", "memristor", "--out", "{tmp}/g.json"], "memristor"),
    ("ir_drop", ["--threads", "0"], "argument --threads: must be at least 1, got 0"),
    ("peft_sst2", ["--arms", "grasp-k32,nosuch"], "argument --arms: unknown 'nosuch'"),
    ("step_time", ["--arms", "nosuch"], "argument --arms: unknown 'nosuch'"),
    ("step_time", ["--rounds", "0"], "argument --rounds: must be at least 1, got 0"),
    ("stochgrasp_step", ["--arms", "lora,lora"], "argument --arms: 'lora' is named twice"),
    ("stochgrasp_step", ["--threads", "0"], "argument --threads: must be at least 1, got 0"),
    ("sweep_scaling", ["--workers", "2", "0"], "argument --workers: must be at least 1, got 0"),
    ("sweep_scaling", ["--times", "bogus", "--checkpoint", "x.pt", "--out", "{tmp}/s.json"], "'bogus'"),
    ("sweep_scaling", ["--no-such-option"], "unrecognized arguments: --no-such-option"),
])
def test_a_benchmark_refuses_bad_input_in_one_line_before_any_work(script, argv, message, tmp_path,
                                                                   monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    module = __import__(script)
    monkeypatch.setattr(sys, "argv", [f"{script}.py", *(a.format(tmp=tmp_path) for a in argv)])
    with pytest.raises(SystemExit) as exited:
        run_script(getattr(module, "run", module.main))
    err = capsys.readouterr().err
    assert exited.value.code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith(f"{script}.py: error: ") and message in err
    assert not list(tmp_path.iterdir())
