"""Gradients of every custom autograd function and every loss term, in double precision:
``torch.autograd.gradcheck`` against finite differences, and the eq. 6 penalty against its closed
form 2 lambda n (sigma - sigma_target) sign(s)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from imc_sim.peft.grasp import GraspConfig
from imc_sim.peft.grasp.layer import GraspLayer, GroupAffine
from imc_sim.peft.stochgrasp import StochGraspConfig, sigma_penalty
from imc_sim.peft.stochgrasp.layer import SIGMA_FLOOR, StochGraspLayer
from imc_sim.training.device_aware import ReplacedValue

GEN = torch.Generator().manual_seed(0)


def randn(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=GEN, dtype=torch.float64)


def away_from_zero(n: int, lo: float = 0.3) -> torch.Tensor:
    """n doubles with |v| in [lo, lo + 1) and both signs: outside GRASP's gamma_min dead zone."""
    v = torch.rand(n, generator=GEN, dtype=torch.float64) + lo
    return v * torch.where(torch.arange(n) % 2 == 0, 1.0, -1.0).double()


@pytest.mark.parametrize("shape", [(5, 7), (2, 3, 7)])
def test_group_affine_gradcheck(shape):
    group = torch.tensor([0, 1, 2, 0, 1, 2, 2])
    x = randn(*shape).requires_grad_()
    gamma = away_from_zero(3).requires_grad_()
    beta = randn(3).requires_grad_()
    assert torch.autograd.gradcheck(lambda x, g, b: GroupAffine.apply(x, g, b, group, 1e-2),
                                    (x, gamma, beta))


@pytest.mark.parametrize("needs", [(True, False, False), (False, True, False), (False, False, True)])
def test_group_affine_gradcheck_each_input_alone(needs):
    """The backward's branches for each ``needs_input_grad`` pattern."""
    group = torch.tensor([1, 0, 1, 0, 0])
    args = [randn(4, 5), away_from_zero(2), randn(2)]
    for arg, need in zip(args, needs, strict=True):
        arg.requires_grad_(need)
    assert torch.autograd.gradcheck(lambda x, g, b: GroupAffine.apply(x, g, b, group, 1e-2), tuple(args))


def test_group_affine_dead_zone_passes_the_projection_straight_through():
    """|gamma| < gamma_min: the forward divides by sign(gamma) gamma_min, the backward is that
    of x a + c with a = 1 / gamma_min held as a function of gamma (straight through)."""
    group = torch.tensor([0, 0, 1])
    x = randn(4, 3)
    gamma = torch.tensor([0.001, -0.002], dtype=torch.float64, requires_grad=True)
    beta = randn(2).requires_grad_()
    y = GroupAffine.apply(x, gamma, beta, group, 0.01)
    a = torch.tensor([1 / 0.01, -1 / 0.01], dtype=torch.float64)
    assert torch.allclose(y, (x - beta.detach()[group]) * a[group])
    upstream = randn(4, 3)
    g_gamma, g_beta = torch.autograd.grad(y, (gamma, beta), upstream)
    grad_a = torch.zeros(2, dtype=torch.float64).index_add_(0, group, (upstream * x).sum(0))
    grad_c = torch.zeros(2, dtype=torch.float64).index_add_(0, group, upstream.sum(0))
    assert torch.allclose(g_gamma, a * a * (beta.detach() * grad_c - grad_a))
    assert torch.allclose(g_beta, -a * grad_c)


def test_group_affine_backward_keeps_the_inputs_device():
    """Every tensor of the backward on the inputs' device (meta stands in for a GPU: a tensor
    made on the CPU mixed with it raises)."""
    x = torch.empty(3, 8, device="meta", requires_grad=True)
    gamma = torch.empty(2, device="meta", requires_grad=True)
    beta = torch.empty(2, device="meta", requires_grad=True)
    group = torch.zeros(8, dtype=torch.long, device="meta")
    y = GroupAffine.apply(x, gamma, beta, group, 1e-2)
    grads = torch.autograd.grad(y.sum(), (x, gamma, beta))
    assert all(g.device.type == "meta" for g in grads)


class Merged(nn.Module):
    """Calls ``layer.effective_weight()`` in its forward (so functional_call can swap the params)."""

    def __init__(self, layer: GraspLayer):
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, b = self.layer.effective_weight()
        return x @ w + b


def test_grasp_layer_and_effective_weight_gradcheck():
    """The adapted forward (GroupAffine) and the merged weights (safe_divisor) have the exact
    gradient outside the dead zone, and compute the same outputs."""
    layer = GraspLayer(nn.Linear(6, 4).double(), "layer", GraspConfig(k=3)).double()
    merged = Merged(layer)
    x = randn(5, 6)

    def adapted_out(gamma, beta):
        return torch.func.functional_call(layer, {"gamma": gamma, "beta": beta}, (x,))

    def merged_out(gamma, beta):
        return torch.func.functional_call(merged, {"layer.gamma": gamma, "layer.beta": beta}, (x,))

    params = (away_from_zero(3).requires_grad_(), randn(3).requires_grad_())
    assert torch.allclose(adapted_out(*params), merged_out(*params))
    assert torch.autograd.gradcheck(adapted_out, params)
    assert torch.autograd.gradcheck(merged_out, params)


def test_replaced_value_gradcheck():
    """ReplacedValue passes the chip's value on and differentiates as the digital product x W:
    gradcheck with the value equal to the product."""
    w = randn(6, 4).requires_grad_()
    for shape in [(5, 6), (2, 3, 6)]:
        x = randn(*shape).requires_grad_()
        assert torch.autograd.gradcheck(lambda x, w: ReplacedValue.apply(x, w, (x @ w).detach()), (x, w))


def test_replaced_value_forwards_the_value_and_ignores_it_in_backward():
    x, w = randn(2, 3, 6).requires_grad_(), randn(6, 4).requires_grad_()
    value = randn(2, 3, 4)
    y = ReplacedValue.apply(x, w, value)
    assert torch.equal(y, value)
    upstream = randn(2, 3, 4)
    gx, gw = torch.autograd.grad(y, (x, w), upstream)
    ex, ew = torch.autograd.grad(x @ w, (x, w), upstream)
    assert torch.allclose(gx, ex) and torch.allclose(gw, ew)


@pytest.mark.parametrize("rows", ["rows", "shared"])
def test_stochgrasp_penalty_gradient_closed_form(rows):
    """d(lam P)/ds = 2 lam n (sigma - sigma_target) sign(s), sigma = |s| + floor, n the weights
    sharing the entry (D_in / rows x the columns of the group)."""
    d_in, d_out, k, lam, target = 6, 10, 3, 0.05, 0.01
    model = nn.Sequential(nn.Linear(d_in, d_out).double())
    layer = StochGraspLayer(model[0], "0", StochGraspConfig(k=k, rows=rows)).double()
    model[0] = layer
    with torch.no_grad():
        layer.sigma_raw.copy_(randn(*layer.sigma_raw.shape) * 0.02)
    s = layer.sigma_raw
    loss = lam * sigma_penalty(model, target)
    (grad,) = torch.autograd.grad(loss, s)
    columns = torch.stack([(layer.group == g).sum() for g in range(k)]).double()
    n = columns[None, :] * (d_in // s.shape[0])
    sigma = s.detach().abs() + SIGMA_FLOOR
    assert torch.allclose(grad, 2 * lam * n * (sigma - target) * s.detach().sign())
    assert torch.allclose(loss, lam * (n * (sigma - target) ** 2).sum())
    assert torch.autograd.gradcheck(lambda s: lam * ((s.abs() + SIGMA_FLOOR - target) ** 2 * n).sum(), (s,))


@pytest.mark.parametrize("sampling", ["weights", "outputs"])
def test_stochgrasp_training_forward_gradcheck(sampling):
    """The reparameterised forward x (W + mu + sigma eps), with each sampling: gradcheck in mu and
    s with eps fixed (the layer's own generator restarted at every call)."""
    layer = StochGraspLayer(nn.Linear(5, 6).double(), "l", StochGraspConfig(k=2, sampling=sampling)
                            ).double().train()
    x = randn(3, 5)

    def forward(mu, s):
        layer._noise = None  # the next draw restarts the layer's stream: the same eps
        return torch.func.functional_call(layer, {"mu": mu, "sigma_raw": s}, (x,))

    mu = randn(*layer.mu.shape).requires_grad_()
    s = (away_from_zero(layer.sigma_raw.numel(), 0.01).view_as(layer.sigma_raw) * 0.1).requires_grad_()
    assert torch.autograd.gradcheck(forward, (mu, s))
