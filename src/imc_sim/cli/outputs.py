"""A command's output paths, checked before its long work: each can be written, and none names
the same file as one of the command's input files or another output."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable, Iterator, Mapping

INPUTS = (("checkpoint", "the checkpoint"), ("checkpoints", "the checkpoint"), ("plan", "the plan"),
          ("device", "the device profile"), ("profile", "the input file"), ("train_file", "--train-file"),
          ("validation_file", "--validation-file"))
"""Parsed options that may name an input file, and what an error calls it."""


def input_files(args: argparse.Namespace,
                extra: Iterable[str | os.PathLike[str]] = ()) -> Iterator[tuple[str, str]]:
    """(what, path) for every existing file among the command's inputs, then ``extra`` (checkpoints)."""
    for attr, what in INPUTS:
        value = getattr(args, attr, None)
        for path in [value] if isinstance(value, str) else value or ():
            if os.path.isfile(path):
                yield f"{what} {path}", path
    for path in extra:
        yield f"the checkpoint {path}", str(path)


def check_output_paths(args: argparse.Namespace, outputs: Mapping[str, str | None],
                       extra_inputs: Iterable[str | os.PathLike[str]] = ()) -> None:
    """One-line error now if an output (option -> path) could not be written or would replace an
    input or another output, or if a ``--plot`` is not a figure's file type."""
    from imc_sim.atomic import check_outputs

    check_outputs(outputs, list(input_files(args, extra_inputs)))
    if outputs.get("--plot"):
        from imc_sim.figures import figure_format

        figure_format(outputs["--plot"])
