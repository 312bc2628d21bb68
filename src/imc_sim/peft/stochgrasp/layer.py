"""The StochGRASP layer: W~ = W + dW, dW ~ N(mu[f(i), g(j)], sigma[f(i), g(j)]) (eq. 5).

Training samples dW = mu_hat + sigma_hat * eps, eps ~ N(0, 1), afresh on every forward (the
reparameterization trick), either weight by weight or, with ``sampling='outputs'``, on the outputs
from their mean and variance (see :class:`StochGraspConfig`). The noise comes from the layer's
own :class:`NoiseStream` on its parameters' device, seeded from the config seed and the layer's
name.
In evaluation the layer holds one realization until told otherwise: ``mean`` (dW = mu_hat),
``sample`` (one draw with the learned sigma) or ``inject`` (one draw with sigma replaced by a
given sigma_noise, the paper's Fig. 6 protocol: absolute, or relative to the layer's weight std).
"""

from __future__ import annotations

import torch
from torch import nn

from imc_sim.errors import ImcSimError
from imc_sim.peft.grouping import eq2_group_sizes, expand, group_index, layer_seed
from imc_sim.peft.inject import AdapterLayer
from imc_sim.peft.stochgrasp.config import StochGraspConfig
from imc_sim.peft.stochgrasp.noise import NoiseStream
from imc_sim.peft.stochgrasp.output_noise import OutputNoiseLinear
from imc_sim.peft.targets import in_out_features, linear_forward, weight_in_out, with_weights

SIGMA_FLOOR = 1e-6
"""sigma = |s| + SIGMA_FLOOR: strictly positive, and additive steps under Adam (a softplus at the
paper's sigma ~ 0.003 would turn every step into a ~0.3 % relative change and barely move sigma)."""

EVAL_MODES = ("mean", "sample", "inject")


class StochGraspLayer(AdapterLayer):
    """Learned Gaussian weight perturbation of one Linear/Conv1D, shared per (row, column group)."""

    def __init__(self, base: nn.Module, name: str, config: StochGraspConfig) -> None:
        super().__init__()
        self.base = base
        d_in, d_out = in_out_features(base)
        k = config.k
        device = base.weight.device
        seed = layer_seed(config.seed, name)
        self.register_buffer("group", group_index(d_out, k, seed, name, device), persistent=False)
        n_rows = d_in if config.rows == "rows" else 1
        # n[f, g], how many weights share each (mu, sigma) entry: fixed, so counted once here
        per_entry = eq2_group_sizes(d_out, k).unsqueeze(0).float() * (d_in // n_rows)
        self.register_buffer("per_entry", per_entry.to(device), persistent=False)
        self.mu = nn.Parameter(torch.zeros(n_rows, k, device=device))
        self.sigma_raw: nn.Parameter | None = None
        if config.stochastic:
            lo, hi = config.sigma_init
            init = torch.empty(n_rows, k).uniform_(lo, hi, generator=torch.Generator().manual_seed(seed))
            self.sigma_raw = nn.Parameter(init.to(device))
        self.sampling = config.sampling
        self.noise_seed = layer_seed(config.seed, f"{name}:noise")
        self._noise: NoiseStream | None = None
        self.realization: torch.Tensor | None = None

    @property
    def sigma(self) -> torch.Tensor | None:
        """The learned standard deviations, [rows, K] (None for the deterministic variant)."""
        return None if self.sigma_raw is None else self.sigma_raw.abs() + SIGMA_FLOOR

    def noise(self) -> NoiseStream:
        """This layer's training-noise stream, on its parameters' device (restarted from the seed
        when the layer moves to another device)."""
        device = self.mu.device
        if self._noise is None or self._noise.device != device:
            self._noise = NoiseStream(self.noise_seed, device)
        return self._noise

    def sample_delta(self, std: torch.Tensor | float, generator: torch.Generator | None = None):
        """mu_hat + std_hat * eps, [D_in, D_out]; ``std`` is [rows, K] or a scalar; ``eps`` from
        ``generator`` (on the layer's device), else from the layer's own stream."""
        d_in, d_out = in_out_features(self.base)
        mu = expand(self.mu, self.group, 1)
        if isinstance(std, torch.Tensor):
            std = expand(std, self.group, 1)
        eps = (self.noise().normal((d_in, d_out), mu.dtype) if generator is None else
               torch.randn(d_in, d_out, generator=generator, device=mu.device, dtype=mu.dtype))
        return torch.addcmul(mu, eps, std if isinstance(std, torch.Tensor) else mu.new_tensor(std))

    def weight_scale(self) -> float:
        """The base weight's standard deviation, the unit of a relative injected sigma."""
        return float(self.base.weight.detach().float().std())

    def set_eval_mode(
        self, mode: str, sigma_noise: float = 0.0, generator: torch.Generator | None = None,
        relative: bool = False,
    ) -> None:
        """Fix the evaluation realization: 'mean', 'sample' (learned sigma) or 'inject' (sigma =
        ``sigma_noise``, in weight units, or times :meth:`weight_scale` where ``relative``)."""
        if mode not in EVAL_MODES:
            raise ImcSimError(f"unknown evaluation mode {mode!r}; choose {', '.join(EVAL_MODES)}")
        if sigma_noise < 0:
            raise ImcSimError(f"sigma_noise must be >= 0, got {sigma_noise}")
        with torch.no_grad():
            if mode == "inject":
                sigma = sigma_noise * self.weight_scale() if relative else sigma_noise
                self.realization = self.sample_delta(sigma, generator)
            elif mode == "sample" and self.sigma is not None:
                self.realization = self.sample_delta(self.sigma, generator)
            else:
                self.realization = None

    def delta(self) -> torch.Tensor:
        """dW for this forward pass, broadcastable to [D_in, D_out]."""
        if self.training:
            mean = expand(self.mu, self.group, 1)
            return mean if self.sigma is None else self.sample_delta(self.sigma)
        if self.realization is not None:
            return self.realization
        return expand(self.mu, self.group, 1)

    def effective_weight(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(W + dW, b) for this forward pass (dW as :meth:`delta`)."""
        return weight_in_out(self.base) + self.delta(), self.base.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.sampling == "outputs":
            sigma = self.sigma
            noise = None if sigma is None else self.noise()
            return OutputNoiseLinear.apply(x, weight_in_out(self.base), self.base.bias, self.mu, sigma,
                                           self.group, noise)
        return linear_forward(self.base, x, self.effective_weight()[0])

    def penalty(self, sigma_target: float) -> torch.Tensor:
        """sum over this layer's weights of (sigma[f(i), g(j)] - sigma_target)^2 (eq. 6)."""
        sigma = self.sigma
        if sigma is None:
            return self.mu.new_zeros(())
        return ((sigma - sigma_target) ** 2 * self.per_entry).sum()

    @torch.no_grad()
    def merged(self) -> nn.Module:
        """W' = W + mu_hat: the mean weights, the ones a chip is programmed with."""
        return with_weights(self.base, weight_in_out(self.base) + expand(self.mu, self.group, 1),
                            self.base.bias)
