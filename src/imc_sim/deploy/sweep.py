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
                per_time[k].append(measure())
                bar.update()
    return [TimePoint.of(t, m) for t, m in zip(times, per_time, strict=True)]
