"""The StochGRASP layer: W~ = W + dW, dW ~ N(mu[f(i), g(j)], sigma[f(i), g(j)]) (eq. 5).

Training samples dW = mu_hat + sigma_hat * eps, eps ~ N(0, 1), afresh on every forward (the
reparameterization trick). In evaluation the layer holds one realization until told otherwise:
``mean`` (dW = mu_hat), ``sample`` (one draw with the learned sigma) or ``inject`` (one draw with
sigma replaced by a given absolute sigma_noise, the paper's Fig. 6 protocol).
"""

from __future__ import annotations

import torch
from torch import nn

from imc_sim.errors import ImcSimError
from imc_sim.peft.grouping import group_index, group_sizes, layer_seed
from imc_sim.peft.inject import AdapterLayer
from imc_sim.peft.stochgrasp.config import StochGraspConfig
from imc_sim.peft.targets import in_out_features, linear_forward, weight_in_out, with_weights

SIGMA_FLOOR = 1e-6
"""sigma = |s| + SIGMA_FLOOR: strictly positive, and additive steps under Adam (a softplus at the
paper's sigma ~ 0.003 would turn every step into a ~0.3 % relative change and barely move sigma)."""

EVAL_MODES = ("mean", "sample", "inject")


class StochGraspLayer(AdapterLayer):
    """Learned Gaussian weight perturbation of one Linear/Conv1D, shared per (row, column group)."""

    def __init__(self, base: nn.Module, name: str, config: StochGraspConfig) -> None:
        super().__init__()
        if config.rows not in ("rows", "shared"):
            raise ImcSimError(f"rows must be 'rows' or 'shared', got {config.rows!r}")
        self.base = base
        d_in, d_out = in_out_features(base)
        k = config.k
        seed = layer_seed(config.seed, name)
        self.register_buffer("group", group_index(d_out, k, seed, name), persistent=False)
        n_rows = d_in if config.rows == "rows" else 1
        self.mu = nn.Parameter(torch.zeros(n_rows, k))
        self.sigma_raw: nn.Parameter | None = None
        if config.stochastic:
            lo, hi = config.sigma_init
            init = torch.empty(n_rows, k).uniform_(lo, hi, generator=torch.Generator().manual_seed(seed))
            self.sigma_raw = nn.Parameter(init)
        self.eval_mode = "mean"
        self.realization: torch.Tensor | None = None

    @property
    def sigma(self) -> torch.Tensor | None:
        """The learned standard deviations, [rows, K] (None for the deterministic variant)."""
        return None if self.sigma_raw is None else self.sigma_raw.abs() + SIGMA_FLOOR

    def weights_per_entry(self) -> torch.Tensor:
        """n[f, g]: how many weights share each (mu, sigma) entry, [rows, K]."""
        d_in, _ = in_out_features(self.base)
        per_row = d_in // self.mu.shape[0]
        return group_sizes(self.group, self.mu.shape[1])[None, :].float() * per_row

    def sample_delta(self, std: torch.Tensor | float, generator: torch.Generator | None = None):
        """mu_hat + std_hat * eps, [D_in, D_out]; ``std`` is [rows, K] or a scalar."""
        d_in, d_out = in_out_features(self.base)
        mu = self.mu[:, self.group]
        if isinstance(std, torch.Tensor):
            std = std[:, self.group]
        eps = torch.randn(d_in, d_out, generator=generator, device=mu.device)
        return mu + std * eps

    def set_eval_mode(
        self, mode: str, sigma_noise: float = 0.0, generator: torch.Generator | None = None
    ) -> None:
        """Fix the evaluation realization: 'mean', 'sample' (learned sigma) or 'inject'."""
        if mode not in EVAL_MODES:
            raise ImcSimError(f"unknown evaluation mode {mode!r}; choose {', '.join(EVAL_MODES)}")
        if sigma_noise < 0:
            raise ImcSimError(f"sigma_noise must be >= 0, got {sigma_noise}")
        self.eval_mode = mode
        with torch.no_grad():
            if mode == "inject":
                self.realization = self.sample_delta(sigma_noise, generator)
            elif mode == "sample" and self.sigma is not None:
                self.realization = self.sample_delta(self.sigma, generator)
            else:
                self.realization = None

    def delta(self) -> torch.Tensor:
        """dW for this forward pass, broadcastable to [D_in, D_out]."""
        if self.training:
            return self.mu[:, self.group] if self.sigma is None else self.sample_delta(self.sigma)
        if self.realization is not None:
            return self.realization
        return self.mu[:, self.group]

    def effective_weight(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(W + dW, b) for this forward pass (dW as :meth:`delta`)."""
        return weight_in_out(self.base) + self.delta(), self.base.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear_forward(self.base, x, self.effective_weight()[0])

    def penalty(self, sigma_target: float) -> torch.Tensor:
        """sum over this layer's weights of (sigma[f(i), g(j)] - sigma_target)^2 (eq. 6)."""
        sigma = self.sigma
        if sigma is None:
            return self.mu.new_zeros(())
        return ((sigma - sigma_target) ** 2 * self.weights_per_entry()).sum()

    @torch.no_grad()
    def merged(self) -> nn.Module:
        """W' = W + mu_hat: the mean weights, the ones a chip is programmed with."""
        return with_weights(self.base, weight_in_out(self.base) + self.mu[:, self.group],
                            self.base.bias)
