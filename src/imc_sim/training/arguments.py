"""The types and ranges of a training run's arguments given from Python (``TrainArgs(...)``): what
the command line's option types check (``imc_sim.cli.numbers``), each a one-line error naming the
field."""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Mapping
from typing import Any

from imc_sim import data
from imc_sim.devices.profile import DeviceProfile
from imc_sim.errors import ImcSimError

COUNTS = ("batch_size", "max_steps", "max_length")
"""Integers >= 1."""
LIMITS = ("train_limit", "eval_limit")
"""Integers >= 1, or None: no limit."""
FRACTIONS = ("warmup", "device_warmup")
"""Fractions of the steps, in [0, 1)."""
TEXTS = ("method", "task", "torch_device", "mixed_precision")
OPTIONAL_TEXTS = ("device_layers",)  # drift: validate() says what it may be
PATHS = ("model", "data_dir")
"""Text or a path (``pathlib.Path``), or None."""
SEED_LIMIT = 2**63 - 1


def _is_count(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _refuse(name: str, value: Any, must: str) -> ImcSimError:
    return ImcSimError(f"TrainArgs.{name} = {value!r}: must be {must}")


def check_argument_types(args: Any) -> None:
    """One line for the first field of ``args`` (a ``TrainArgs``) of a type or range the command
    line would refuse; method options are the method's to check."""
    for name in COUNTS:
        if not _is_count(getattr(args, name)):
            raise _refuse(name, getattr(args, name), "an integer >= 1")
    for name in LIMITS:
        value = getattr(args, name)
        if value is not None and not _is_count(value):
            raise _refuse(name, value, "an integer >= 1, or None (no limit)")
    if isinstance(args.seed, bool) or not isinstance(args.seed, numbers.Integral) \
            or not 0 <= args.seed <= SEED_LIMIT:
        raise _refuse("seed", args.seed, f"an integer from 0 to {SEED_LIMIT}")
    if args.lr is not None and not (_is_real(args.lr) and 0 < args.lr <= 1):
        raise _refuse("lr", args.lr, "a number in (0, 1], or None (the method's default)")
    for name in FRACTIONS:
        value = getattr(args, name)
        if not (_is_real(value) and 0 <= value < 1):
            raise _refuse(name, value, "a fraction of the steps in [0, 1)")
    for name in TEXTS:
        if not isinstance(getattr(args, name), str):
            raise _refuse(name, getattr(args, name), "text")
    for name in OPTIONAL_TEXTS:
        if getattr(args, name) is not None and not isinstance(getattr(args, name), str):
            raise _refuse(name, getattr(args, name), "text, or None")
    for name in PATHS:
        if getattr(args, name) is not None and not isinstance(getattr(args, name), str | os.PathLike):
            raise _refuse(name, getattr(args, name), "text or a path, or None")
    if isinstance(args.device, DeviceProfile):
        raise ImcSimError(f"TrainArgs.device takes a profile's name or YAML path, which the checkpoint "
                          f"records, not a profile object; write {args.device.name!r} to a file first "
                          "(yaml.safe_dump(profile.document()))")
    if args.device is not None and not isinstance(args.device, str | os.PathLike):
        raise _refuse("device", args.device, "a profile's name or YAML path, or None")
    if not isinstance(args.method_options, Mapping):
        raise _refuse("method_options", args.method_options, "a dict of method options")
    if "seed" in args.method_options:
        raise ImcSimError("method_options: the seed is TrainArgs.seed, not a method option")
    if args.data_source is not None and not isinstance(args.data_source, data.DataSource):
        raise _refuse("data_source", args.data_source, "an imc_sim.data.DataSource, or None")
