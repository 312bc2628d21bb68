"""Weight-space GRASP and StochGRASP options (paper eq. 5-6)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from imc_sim.errors import ImcSimError

ROWS = ("rows", "shared")
SAMPLINGS = ("weights", "outputs")


def auto_sigma_factor(value: object) -> float | None:
    """The factor F of a sigma_target written ``auto`` (F = 1) or ``auto*F`` (F > 0): the target is
    then F times :func:`imc_sim.training.sigma_target.sigma_target_auto`; None for a number."""
    if not isinstance(value, str):
        return None
    head, _, factor = value.partition("*")
    if head != "auto":
        raise ImcSimError(f"sigma_target: expected a number, 'auto' or 'auto*F', got {value!r}")
    if not factor:
        return 1.0
    try:
        f = float(factor)
    except ValueError:
        raise ImcSimError(f"sigma_target: the F of 'auto*F' must be a number, got {factor!r}") from None
    if not (f > 0 and math.isfinite(f)):
        raise ImcSimError(f"sigma_target: the F of 'auto*F' must be positive, got {factor!r}")
    return f


@dataclass
class StochGraspConfig:
    """dW[i, j] ~ N(mu[f(i), g(j)], sigma[f(i), g(j)]) on each target layer.

    ``rows``: 'rows' gives f(i) = i (a distribution per input row and column group, O(D_in K)
    parameters per layer); 'shared' gives f(i) = 1 (O(K)). g groups the D_out output columns
    into K groups as in eq. 2. ``stochastic=False`` is the deterministic variant (sigma = 0,
    only mu learned): the paper's Fig. 6 baseline.

    ``sampling``: how a training forward applies dW. 'weights' is the paper's: one dW per forward,
    materialised weight by weight. 'outputs' (the default: on SST-2 it trained as well, and it
    costs less per step) computes the same per-output distribution without sampling dW and
    without a weight-sized gradient: the mean x (W + mu_hat) and, for StochGRASP, noise drawn on
    each output from its variance (x_r^2 sigma^2)[g(j)] (the local reparameterisation trick),
    x_r = x for 'rows' and sum_i x_i for 'shared' (one autograd node: stochgrasp/output_noise.py).
    Each output's mean and variance are the same; the noise is independent per token instead of
    shared by the batch. Evaluation and merging do not depend on it, and device-aware training
    (``--device``), which programs the sampled weights onto the simulated chip, always draws them
    weight by weight.

    Eq. 6 penalty: lam * sum over every weight (i, j) of every target layer of
    (sigma[f(i), g(j)] - sigma_target)^2, the sum as written in the paper. Each sigma entry then
    gets the gradient 2 lam n (sigma - sigma_target), with n the number of weights sharing it;
    the task loss's pull on that sigma (through the curvature the noise meets) grows with the same
    n, so the balance set by lam does not depend on layer size or layer count, and lam in the
    paper's 0.01-0.1 keeps its meaning. The loss *value* does grow with model size; it is logged
    apart from the task loss.
    """

    k: int = 64
    targets: str = "all-linear"
    rows: str = "rows"
    stochastic: bool = True
    sigma_init: tuple[float, float] = (0.001, 0.005)
    sigma_target: float = 0.01
    lam: float = 0.05
    seed: int = 0
    sampling: str = "outputs"

    def __post_init__(self) -> None:
        if self.rows not in ROWS:
            raise ImcSimError(f"rows must be one of {', '.join(ROWS)}; got {self.rows!r}")
        if self.sampling not in SAMPLINGS:
            raise ImcSimError(
                f"sampling must be one of {', '.join(SAMPLINGS)}; got {self.sampling!r}")
