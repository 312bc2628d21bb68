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
