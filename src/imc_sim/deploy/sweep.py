"""Seeds x drift times: program once per seed, drift that same state to each time, evaluate.

A seed is one chip (:class:`imc_sim.deploy.chip.Chip`): its programming noise, drift
coefficients, read noise and every output-noise sample of the evaluations at all drift times come
from the chip's own streams, never from torch's global generator. Two checkpoints swept with the
same seeds see the same noise draws wherever their layer names and shapes agree.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Callable, Iterable, Sequence
from typing import SupportsFloat

from tqdm.auto import tqdm

from imc_sim.crossbar.mapping import Deployment
from imc_sim.deploy.chip import Chip
from imc_sim.deploy.results import TimePoint
from imc_sim.devices.profile import DeviceProfile, load_profile
from imc_sim.errors import ImcSimError, NonFiniteOutputs
from imc_sim.units import format_time, seconds

MAX_SEEDS = 100_000
"""The most chips one sweep programs (a count beyond it is a typo, not a plan)."""


def sweep_arguments(profile: DeviceProfile | str | os.PathLike[str], times: Iterable[str | SupportsFloat],
                    seeds: int) -> tuple[DeviceProfile, list[float], int]:
    """The Python API's sweep arguments checked before any work: a profile (or a shipped name or
    YAML path, :func:`~imc_sim.devices.profile.load_profile`), drift times in seconds or as text
    (``'1d'``, :func:`~imc_sim.units.seconds`; at least one, none twice, ones the device has) and
    a count of chips from 1 to :data:`MAX_SEEDS`."""
    if not isinstance(profile, DeviceProfile):
        profile = load_profile(os.fspath(profile))
    if isinstance(times, str) or not isinstance(times, Iterable):
        raise ImcSimError(f"times is a list of drift times, not {times!r}")
    checked = [seconds(t) for t in times]
    if not checked:
        raise ImcSimError("no drift time given")
    repeated = next((t for k, t in enumerate(checked) if t in checked[:k]), None)
    if repeated is not None:
        raise ImcSimError(f"drift time {format_time(repeated)} is given twice")
    profile.check_times(checked)
    if isinstance(seeds, bool) or not isinstance(seeds, numbers.Integral) or not 1 <= seeds <= MAX_SEEDS:
        raise ImcSimError(f"seeds is a count of chips from 1 to {MAX_SEEDS}, not {seeds!r}")
    return profile, checked, int(seeds)


def drift_sweep(
    deployment: Deployment,
    measure: Callable[[], float],
    seeds: Sequence[int],
    times: Sequence[float],
    progress: bool = True,
    desc: str = "deploy",
) -> list[TimePoint]:
    """One :class:`TimePoint` per time: the metric of every seed, their mean, std and min."""
    per_time: list[list[float]] = [[] for _ in times]
    with tqdm(total=len(seeds) * len(times), desc=desc, disable=not progress) as bar:
        for seed in seeds:
            chip = Chip(deployment, seed)
            chip.program()
            for k, t in enumerate(times):
                chip.drift_to(t)
                try:
                    per_time[k].append(measure())
                except NonFiniteOutputs as exc:
                    raise NonFiniteOutputs(
                        f"on device {deployment.profile.name!r} (chip {seed}, {format_time(t)}), {exc}; "
                        "a profile value beyond what the simulation can represent?") from None
                bar.update()
    return [TimePoint.of(t, m) for t, m in zip(times, per_time, strict=True)]
