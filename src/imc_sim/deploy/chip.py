"""A chip: a deployed model programmed once with a seed, then read out at drift times.

The seed fixes every random number of the chip through its streams
(:class:`imc_sim.crossbar.streams.ChipStreams`): programming noise, drift coefficients, the read
noise accumulated by each drift time, the compensation read-outs and the per-read noise of every
forward. The same seed gives the same chip whatever the thread count, the order of drift times
or the other models deployed in the same process; torch's global generator is never used.
"""

from __future__ import annotations

from imc_sim.crossbar.mapping import Deployment
from imc_sim.crossbar.streams import ChipStreams


class Chip:
    """``deployment`` on the chip of ``seed``: :meth:`program` once, then :meth:`drift_to` each
    time (any order); the deployment's model then computes that chip's outputs at that time."""

    def __init__(self, deployment: Deployment, seed: int):
        self.deployment, self.seed = deployment, seed
        self.streams = ChipStreams(seed)
        self.programmed = False

    def program(self) -> None:
        """Program every analog layer (programming noise, drift coefficients, baselines)."""
        self.deployment.program(self.streams)
        self.programmed = True

    def drift_to(self, t_seconds: float) -> None:
        """The chip ``t_seconds`` after programming (programs it first if it was not)."""
        if not self.programmed:
            self.program()
        self.deployment.drift(t_seconds, self.streams)

    def __repr__(self) -> str:
        return f"Chip(seed={self.seed}, layers={len(self.deployment.layers)})"
