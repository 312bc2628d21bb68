"""The GRASP layer: x~_i = (x_i - beta_g(i)) / gamma_g(i), then the frozen layer (eq. 1)."""

from __future__ import annotations

import torch
from torch import nn

from imc_sim.peft.grasp.config import GraspConfig
from imc_sim.peft.grouping import group_index, layer_seed
from imc_sim.peft.inject import AdapterLayer
from imc_sim.peft.targets import in_out_features, weight_in_out


class GroupAffine(torch.autograd.Function):
    """Eq. 1 for one layer as one autograd node: x~ = (x - beta_hat) / gamma_hat = x a[g] + c[g],
    with a = 1 / gamma_s, c = -beta a and gamma_s = sign(gamma) max(|gamma|, gamma_min) (the
    projection passes gradients straight through), g the group of each input dimension (eq. 2).

    Backward: dL/dx = g_out a[g]; per dimension, dL/da_d = sum over tokens of g_out x and
    dL/dc_d = sum over tokens of g_out, summed into the K groups; then
    dL/dgamma = a^2 (beta dL/dc - dL/da) and dL/dbeta = -a dL/dc.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, group: torch.Tensor,
                gamma_min: float) -> torch.Tensor:
        sign = torch.where(gamma < 0, -1.0, 1.0)
        a = 1.0 / (sign * gamma.abs().clamp_min(gamma_min))
        c = -beta * a
        ctx.save_for_backward(x if ctx.needs_input_grad[1] else None, a, beta, group)
        return torch.addcmul(c[group], x, a[group])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, a, beta, group = ctx.saved_tensors
        grad_x = grad * a[group] if ctx.needs_input_grad[0] else None
        flat = grad.reshape(-1, grad.shape[-1])
        k = a.shape[0]
        grad_c = a.new_zeros(k).index_add_(0, group, flat.sum(0))
        grad_gamma = grad_beta = None
        if ctx.needs_input_grad[1]:
            grad_a = a.new_zeros(k).index_add_(
                0, group, torch.linalg.vecdot(flat, x.reshape(flat.shape), dim=0))
            grad_gamma = a * a * (beta * grad_c - grad_a)
        if ctx.needs_input_grad[2]:
            grad_beta = -a * grad_c
        return grad_x, grad_gamma, grad_beta, None, None


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
        self.k = k
        self.gamma = nn.Parameter(torch.ones(k)) if config.learn_scale else None
        self.beta = nn.Parameter(torch.zeros(k)) if config.learn_shift else None

    def expanded(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(gamma_hat, beta_hat) in R^D of eq. 2; None for an ablated half."""
        gamma = None if self.gamma is None else safe_divisor(self.gamma, self.gamma_min)[self.group]
        beta = None if self.beta is None else self.beta[self.group]
        return gamma, beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ones = self.group.new_ones(self.k, dtype=x.dtype)
        gamma = ones if self.gamma is None else self.gamma
        beta = ones * 0 if self.beta is None else self.beta
        return self.base(GroupAffine.apply(x, gamma, beta, self.group, self.gamma_min))

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
