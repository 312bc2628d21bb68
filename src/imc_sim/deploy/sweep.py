"""Seeds x drift times: program once per seed, drift that same state to each time, evaluate.

A seed is one chip (:class:`imc_sim.deploy.chip.Chip`): its programming noise, drift
coefficients, read noise and every output-noise sample of the evaluations at all drift times come
from the chip's own streams, never from torch's global generator. Two checkpoints swept with the
same seeds see the same noise draws wherever their layer names and shapes agree.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from tqdm.auto import tqdm

from imc_sim.crossbar.mapping import Deployment
from imc_sim.deploy.chip import Chip
from imc_sim.units import format_time


def summarize(values: Sequence[float]) -> dict[str, Any]:
    """``metrics`` (one per seed), their ``mean``, sample ``std`` (n - 1; 0 for one seed), ``min``."""
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return {"metrics": list(values), "mean": mean, "std": std, "min": min(values)}


def drift_sweep(
    deployment: Deployment,
    measure: Callable[[], float],
    seeds: Sequence[int],
    times: Sequence[float],
    progress: bool = True,
    desc: str = "deploy",
) -> list[dict[str, Any]]:
    """One entry per time: ``t_seconds``, ``label`` and :func:`summarize` over ``seeds``."""
    per_time: list[list[float]] = [[] for _ in times]
    with tqdm(total=len(seeds) * len(times), desc=desc, disable=not progress) as bar:
        for seed in seeds:
            chip = Chip(deployment, seed)
            chip.program()
            for k, t in enumerate(times):
                chip.drift_to(t)
                per_time[k].append(measure())
                bar.update()
    return [{"t_seconds": t, "label": format_time(t), **summarize(m)}
            for t, m in zip(times, per_time, strict=True)]
