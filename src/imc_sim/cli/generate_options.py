"""``--generate N --prompt TEXT`` of ``imc-sim deploy`` and ``compare``: greedy continuations of a
language-model checkpoint, digitally and after each drift time (chip seed 0)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from imc_sim.errors import ImcSimError

if TYPE_CHECKING:
    from imc_sim.deploy.generate import Continuations
    from imc_sim.devices.profile import DeviceProfile


def add_generate_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("generation", "language-model (--task lm) checkpoints only")
    g.add_argument("--generate", type=int, metavar="N",
                   help="print N greedy next tokens after each --prompt, digitally and at each drift "
                   "time (chip seed 0)")
    g.add_argument("--prompt", action="append", metavar="TEXT",
                   help="text to continue with --generate (repeat for several)")


def check_generate_options(args: argparse.Namespace, paths: list[str]) -> None:
    """One-line errors before any model is loaded."""
    from imc_sim.checkpoint import read_checkpoint

    if args.generate is None:
        if args.prompt:
            raise ImcSimError("--prompt needs --generate N (the number of tokens to generate)")
        return
    if args.generate < 1:
        raise ImcSimError(f"--generate must be at least 1 token, got {args.generate}")
    if not args.prompt:
        raise ImcSimError("--generate needs at least one --prompt")
    for path in paths:
        task = read_checkpoint(path)["task"]
        if task != "lm":
            raise ImcSimError(f"{path}: --generate is for language-model (--task lm) checkpoints, "
                              f"this one is {task}")


def generate_continuations(args: argparse.Namespace, paths: list[str], profile: DeviceProfile,
                           times: list[float], analog_head: bool = False,
                           input_ranges: str = "auto") -> list[Continuations]:
    """With --generate: each checkpoint's continuations of every --prompt (none without). Run
    before the sweep, so that a prompt the model cannot take ends the command before that work."""
    if args.generate is None:
        return []
    from pathlib import Path

    from imc_sim.cli.data_options import data_source
    from imc_sim.deploy.generate import continuations_under_drift

    return [continuations_under_drift(path, profile, times, args.prompt, args.generate, analog_head,
                                      name=Path(path).stem, source=data_source(args),
                                      eval_limit=args.eval_limit,
                                      input_ranges=input_ranges)
            for path in paths]
