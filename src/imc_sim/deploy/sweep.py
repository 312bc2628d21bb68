"""Seeds x drift times: program once per seed, drift that same state to each time, evaluate.

A seed is one chip (:class:`imc_sim.deploy.chip.Chip`): its programming noise, drift
coefficients, read noise and every output-noise sample of the evaluations at all drift times come
from the chip's own streams, never from torch's global generator. Two checkpoints swept with the
same seeds see the same noise draws wherever their layer names and shapes agree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tqdm.auto import tqdm

from imc_sim.crossbar.mapping import Deployment
from imc_sim.deploy.chip import Chip
from imc_sim.deploy.results import TimePoint
from imc_sim.errors import NonFiniteOutputs
from imc_sim.units import format_time

MAX_SEEDS = 100_000
"""The most chips one sweep programs (a count beyond it is a typo, not a plan)."""


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
