"""Weight-space GRASP and StochGRASP options (paper eq. 5-6)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class StochGraspConfig:
    """dW[i, j] ~ N(mu[f(i), g(j)], sigma[f(i), g(j)]) on each target layer.

    ``rows``: 'rows' gives f(i) = i (a distribution per input row and column group, O(D_in K)
    parameters per layer); 'shared' gives f(i) = 1 (O(K)). g groups the D_out output columns
    into K groups as in eq. 2. ``stochastic=False`` is the deterministic variant (sigma = 0,
    only mu learned): the paper's Fig. 6 baseline.

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
