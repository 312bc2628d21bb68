"""A chip: a deployed model programmed once with a seed, then read out at drift times.

The seed fixes every random number of the chip through its streams
(:class:`imc_sim.crossbar.streams.ChipStreams`): programming noise, drift coefficients, the read
noise accumulated by each drift time, the compensation read-outs and the per-read noise of every
forward. The same seed gives the same chip whatever the thread count, the order of drift times
or the other models deployed in the same process; torch's global generator is never used.
"""

from __future__ import annotations

import numbers
from typing import SupportsFloat

from imc_sim.crossbar.mapping import Deployment
from imc_sim.crossbar.streams import ChipStreams
from imc_sim.errors import ImcSimError
from imc_sim.units import seconds


class Chip:
    """``deployment`` on the chip of ``seed``: :meth:`program` once, then :meth:`drift_to` each
    time (any order); the deployment's model then computes that chip's outputs at that time.

    A deployment holds one chip at a time: a chip whose deployment was programmed by another
    since is programmed again by :meth:`drift_to` (the same numbers). Each forward draws new read
    noise; ``deployment.restart_reads()`` replays the reads from the current drift time."""

    def __init__(self, deployment: Deployment, seed: int):
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
            raise ImcSimError(f"a chip's seed is an integer >= 0, not {seed!r}")
        self.deployment, self.seed = deployment, int(seed)
        self.streams = ChipStreams(self.seed)

    @property
    def programmed(self) -> bool:
        """Whether the deployment holds this chip's programmed devices."""
        return self.deployment.programmed_seed == self.seed

    def program(self) -> None:
        """Program every analog layer (programming noise, drift coefficients, baselines)."""
        self.deployment.program(self.streams)

    def drift_to(self, time: str | SupportsFloat) -> None:
        """The chip ``time`` after programming: seconds, or text such as ``'1d'``
        (:func:`imc_sim.units.seconds`); programs it first where the deployment holds no or
        another chip."""
        t_seconds = seconds(time)
        if not self.programmed:
            self.program()
        self.deployment.drift(t_seconds, self.streams)

    def __repr__(self) -> str:
        return f"Chip(seed={self.seed}, layers={len(self.deployment.layers)})"
