"""StochGRASP's output-sampled training forward as one autograd node (``sampling='outputs'``).

    y = x (W + mu_hat) + b + sqrt(x_r^2 sigma^2)[g(j)] eps,   eps ~ N(0, 1) per token and output,

mu_hat[i, j] = mu[f(i), g(j)], x_r = x ('rows') or sum_i x_i ('shared'). The mean shift is folded
into the weight (a [D_in, D_out] add instead of a [tokens, D_out] expand and add), the noise is
added in place, and the backward needs no weight-sized product: with G_t[k] = sum_{g(j)=k} dL/dy_tj
and E_t[k] = sum_{g(j)=k} dL/dy_tj eps_tj, std = sqrt(var) = sqrt(x_r^2 sigma^2),

    dL/dmu = x_r^T G,   dL/dsigma = 2 sigma * (x_r^2)^T V,   V = E / (2 std) (0 where var is floored),
    dL/dx = dL/dy (W + mu_hat)^T + 2 x * (V sigma^2^T)  (for 'shared', V sigma^2^T summed over k).

The variance and the group sums are in fp32 at least (sigma^2 ~ 1e-5 underflows fp16); under
autocast the product with the weight runs in autocast's dtype, as the base layer's would.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from imc_sim.peft.stochgrasp import noise as stoch_noise

VARIANCE_FLOOR = 1e-30
"""Lower bound of an output's variance before its square root (an all-zero input row)."""


def group_sum(values: torch.Tensor, group: torch.Tensor, k: int, dtype: torch.dtype) -> torch.Tensor:
    """[T, D] -> [T, K]: sum over the columns j of each group k = g(j), in ``dtype``."""
    return values.new_zeros(values.shape[0], k, dtype=dtype).index_add_(1, group, values.to(dtype))


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype of x W: autocast's where autocast is on for x's device, else x's own."""
    kind = x.device.type
    return torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else x.dtype


class OutputNoiseLinear(torch.autograd.Function):
    """y = x (W + mu_hat) + b [+ std eps] (module docstring), eps the next draw of ``noise`` (a
    :class:`NoiseStream` on x's device); sigma None gives the mean only."""

    @staticmethod
    def forward(ctx, x, weight, bias, mu, sigma, group, noise):  # noqa: D102 - the class says it
        d_in, d_out = weight.shape
        k = mu.shape[1]
        dtype = compute_dtype(x)
        wide = torch.promote_types(x.dtype, torch.float32)
        with torch.autocast(x.device.type, enabled=False):
            x2d = x.reshape(-1, d_in)
            w_eff = (weight + mu.index_select(1, group)).to(dtype)
            xc = x2d.to(dtype)
            out = xc @ w_eff if bias is None else torch.addmm(bias.to(dtype), xc, w_eff)
            saved = [x2d, w_eff, mu]
            if sigma is not None:
                square = x2d.to(wide).square()
                rows_sq = square.sum(-1, keepdim=True) if mu.shape[0] == 1 else square
                sigma_sq = sigma.to(wide).square()
                var = rows_sq @ sigma_sq
                std = var.clamp_min(VARIANCE_FLOOR).sqrt()
                eps = noise.add_scaled(out, std, group, wide)
                saved += [rows_sq, sigma, sigma_sq, var, std, eps]
        ctx.save_for_backward(*saved)
        ctx.group, ctx.k, ctx.stochastic = group, k, sigma is not None
        ctx.weight_dtype = weight.dtype
        return out.view(*x.shape[:-1], d_out)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):  # noqa: D102
        x2d, w_eff, mu = ctx.saved_tensors[:3]
        need_x, need_w, need_b, need_mu, need_sigma = ctx.needs_input_grad[:5]
        group, k = ctx.group, ctx.k
        wide = torch.promote_types(x2d.dtype, torch.float32)
        gy = grad_out.reshape(-1, w_eff.shape[1])
        grad_x = grad_w = grad_b = grad_mu = grad_sigma = None
        if need_mu:
            rows_in = x2d.to(wide).sum(-1, keepdim=True) if mu.shape[0] == 1 else x2d.to(wide)
            grad_mu = (rows_in.T @ group_sum(gy, group, k, wide)).to(mu.dtype)
        if ctx.stochastic and (need_x or need_sigma):
            rows_sq, sigma, sigma_sq, var, std, eps = ctx.saved_tensors[3:]
            per_var = (stoch_noise.group_dot(gy, eps, group, k) if stoch_noise.compiled_for(gy, eps)
                       else group_sum(gy.to(wide) * eps, group, k, wide)).div_(2 * std)
            per_var.masked_fill_(var < VARIANCE_FLOOR, 0.0)
            if need_sigma:
                grad_sigma = ((rows_sq.T @ per_var) * (2 * sigma.to(wide))).to(sigma.dtype)
            if need_x:  # 2 x (V sigma^2^T) + dL/dy W_eff^T, the latter added by the GEMM itself
                grad_x = (per_var @ sigma_sq.T.expand(-1, x2d.shape[1])).mul_(x2d)  # [T, D_in]
                through_w = gy.to(w_eff.dtype)
                if w_eff.dtype == wide:
                    grad_x.addmm_(through_w, w_eff.T, beta=2)
                else:  # autocast: the product in autocast's dtype, the sum in fp32
                    grad_x.mul_(2).add_(through_w @ w_eff.T)
        elif need_x:
            grad_x = gy.to(w_eff.dtype) @ w_eff.T
        if need_w:
            grad_w = (x2d.to(wide).T @ gy.to(wide)).to(ctx.weight_dtype)
        if need_b:
            grad_b = gy.to(wide).sum(0).to(ctx.weight_dtype)
        if grad_x is not None:
            grad_x = grad_x.to(x2d.dtype).view(*grad_out.shape[:-1], x2d.shape[1])
        return grad_x, grad_w, grad_b, grad_mu, grad_sigma, None, None
