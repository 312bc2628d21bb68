"""The ``imc-sim`` command line: one module per sub-command, each with ``register`` and ``run``.

A command module keeps its heavy imports (torch, transformers, aihwkit) inside ``run`` so that
``imc-sim --help`` answers at once. User errors (:class:`ImcSimError`, unreadable files) end in
one line on stderr and exit status 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from imc_sim.errors import ImcSimError
from imc_sim.heap import keep_freed_memory
from imc_sim.report import printing_reports
from imc_sim.units import negative_time

COMMANDS = ("train", "deploy", "compare", "multitask", "sweep", "devices", "sensitivity")


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line, like every other error here."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="imc-sim", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    for name in COMMANDS:
        importlib.import_module(f"imc_sim.cli.{name}").register(sub)
    return parser


def negative_drift(argv: list[str]) -> str | None:
    """A value among ``--drift``'s that starts with a minus and a digit (``-1d``), which argparse
    would take for an option ("expected at least one argument"); None if there is none."""
    in_drift = False
    for token in argv:
        if token.startswith("-") and token[1:2].isdigit() and in_drift:
            return token
        if token.startswith("--"):
            in_drift = token == "--drift"
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    negative = negative_drift(argv)
    if negative is not None:
        print(f"imc-sim: error: {negative_time(negative)}", file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv)
    return run_reporting("imc-sim", lambda: args.run(args), args.debug)


def run_reporting(name: str, call: Callable[[], object], debug: bool = False) -> int:
    """``call()``'s exit status (None: 0) with freed memory kept in the process
    (:mod:`imc_sim.heap`) and the library's reports on stdout (:mod:`imc_sim.report`); a user error
    (:class:`ImcSimError`, an unreadable or unwritable file) is one line on stderr,
    ``NAME: error: ...``, and status 2 (``debug``: its traceback instead)."""
    keep_freed_memory()
    try:
        with printing_reports():
            return int(call() or 0)
    except (ImcSimError, OSError) as exc:
        if debug:
            raise
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130


def run_script(main: Callable[[], object]) -> None:
    """Run an experiment's or benchmark's ``main`` as the command line runs a command
    (:func:`run_reporting`), exiting with its status when that is not 0."""
    status = run_reporting(Path(sys.argv[0]).name, main)
    if status:
        raise SystemExit(status)


if __name__ == "__main__":
    sys.exit(main())
