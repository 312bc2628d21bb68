"""The GRASP layer: x~_i = (x_i - beta_g(i)) / gamma_g(i), then the frozen layer (eq. 1)."""

from __future__ import annotations

import torch
from torch import nn

from imc_sim.peft.grasp.config import GraspConfig
from imc_sim.peft.grouping import group_index, layer_seed
from imc_sim.peft.inject import AdapterLayer
from imc_sim.peft.targets import in_out_features, weight_in_out


class GroupAffine(torch.autograd.Function):
    """x~ = x * a + c over the last dimension, in one pass (a = 1 / gamma_hat, c = -beta_hat / gamma_hat).

    The backward gives dL/dx = g * a, dL/da = sum over tokens of g * x, dL/dc = sum over tokens
    of g; autograd carries dL/da and dL/dc on to gamma and beta (the K-vectors of eq. 2).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, a: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x if ctx.needs_input_grad[1] else None, a)
        return torch.addcmul(c, x, a)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, a = ctx.saved_tensors
        flat = grad.reshape(-1, grad.shape[-1])
        grad_x = grad * a if ctx.needs_input_grad[0] else None
        grad_a = (flat * x.reshape(flat.shape)).sum(0) if ctx.needs_input_grad[1] else None
        grad_c = flat.sum(0) if ctx.needs_input_grad[2] else None
        return grad_x, grad_a, grad_c


def safe_divisor(gamma: torch.Tensor, gamma_min: float) -> torch.Tensor:
    """sign(gamma) * max(|gamma|, gamma_min), with a straight-through gradient."""
    sign = torch.where(gamma < 0, -1.0, 1.0)
    projected = sign * gamma.abs().clamp_min(gamma_min)
    return gamma + (projected - gamma).detach()


class GraspLayer(AdapterLayer):
    """Group-wise input scale and shift of one Linear/Conv1D; K scales and K shifts."""

    def __init__(self, base: nn.Module, name: str, config: GraspConfig) -> None:
        super().__init__()
        self.base = base
        d_in, _ = in_out_features(base)
        k = config.k
        self.register_buffer(
            "group", group_index(d_in, k, layer_seed(config.seed, name), name), persistent=False
        )
        self.gamma_min = config.gamma_min
        self.gamma = nn.Parameter(torch.ones(k)) if config.learn_scale else None
        self.beta = nn.Parameter(torch.zeros(k)) if config.learn_shift else None

    def expanded(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(gamma_hat, beta_hat) in R^D of eq. 2; None for an ablated half."""
        gamma = None if self.gamma is None else safe_divisor(self.gamma, self.gamma_min)[self.group]
        beta = None if self.beta is None else self.beta[self.group]
        return gamma, beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.expanded()
        if gamma is None:
            return self.base(x - beta)
        scale = 1.0 / gamma
        shift = torch.zeros_like(scale) if beta is None else -beta * scale
        return self.base(GroupAffine.apply(x, scale, shift))

    def effective_weight(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """W' = diag(1/gamma_hat) W and b' = b - (beta_hat / gamma_hat) W (W is [D_in, D_out])."""
        gamma, beta = self.expanded()
        w = weight_in_out(self.base)
        bias = self.base.bias
        if gamma is not None:
            w = w / gamma[:, None]
        if beta is not None:
            shift = -beta @ w
            bias = shift if bias is None else bias + shift
        return w, bias
