"""StochGRASP's fused output-sampled forward (peft/stochgrasp/output_noise.py) against the explicit
reference: the perturbed weight W + mu_hat materialised, the noise sqrt(x_r^2 sigma^2)[g(j)] eps
from the same stream, everything through plain autograd, in double precision; and the layer's
noise stream (peft/stochgrasp/noise.py)."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode

from imc_sim.peft.stochgrasp import StochGraspConfig, StochGraspLayer
from imc_sim.peft.stochgrasp import noise as noise_module
from imc_sim.peft.stochgrasp.noise import CHUNK, NoiseStream
from imc_sim.peft.stochgrasp.output_noise import OutputNoiseLinear, group_sum

D_IN, D_OUT, K = 6, 10, 3


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def reference(x, weight, bias, mu, sigma, group, seed):
    """y = x (W + mu_hat) + b + sqrt(x_r^2 sigma^2)[g] eps, eps the first draw of a stream seeded
    with ``seed``: no fusion."""
    mu_hat = mu.expand(D_IN, -1)[:, group]                       # [D_IN, D_OUT], mu[f(i), g(j)]
    out = x @ (weight + mu_hat) + bias
    if sigma is None:
        return out
    sigma_hat = sigma.expand(D_IN, -1)[:, group]
    std = (x.square() @ sigma_hat.square()).sqrt()                # sum_i x_i^2 sigma[f(i), g(j)]^2
    eps = NoiseStream(seed, out.device).normal(out.shape, out.dtype)
    return out + std * eps


def inputs(rows: int, stochastic: bool = True):
    """x [2, 4, D_IN], W, b, mu, sigma (None for the deterministic variant), all double, all leaves."""
    sigma = (0.02 + 0.05 * randn(rows, K, seed=5).abs()) if stochastic else None
    tensors = [randn(2, 4, D_IN, seed=1), 0.3 * randn(D_IN, D_OUT, seed=2), randn(D_OUT, seed=3),
               0.05 * randn(rows, K, seed=4), sigma]
    return [None if t is None else t.requires_grad_() for t in tensors]


GROUP = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 2])


def fused(x, weight, bias, mu, sigma, seed=9):
    noise = None if sigma is None else NoiseStream(seed, x.device)
    return OutputNoiseLinear.apply(x, weight, bias, mu, sigma, GROUP, noise)


@pytest.mark.parametrize("rows", [D_IN, 1])
@pytest.mark.parametrize("stochastic", [True, False])
def test_forward_and_every_gradient_equal_the_materialised_reference(rows, stochastic):
    """Same eps stream: the same outputs, and the same gradients of x, W, b, mu and sigma."""
    args = inputs(rows, stochastic)
    upstream = randn(2, 4, D_OUT, seed=8)
    got = fused(*args)
    want = reference(*args, GROUP, 9)
    torch.testing.assert_close(got, want)
    for g, w in zip(torch.autograd.grad((got * upstream).sum(), [a for a in args if a is not None]),
                    torch.autograd.grad((want * upstream).sum(), [a for a in args if a is not None]),
                    strict=True):
        torch.testing.assert_close(g, w)


@pytest.mark.parametrize("rows", [D_IN, 1])
def test_gradcheck_in_every_input(rows):
    """Finite differences in x, W, b, mu and sigma, the noise stream restarted at every call."""
    assert torch.autograd.gradcheck(fused, tuple(inputs(rows)))


def test_gradients_only_where_asked():
    x, weight, bias, mu, sigma = inputs(D_IN)
    weight.requires_grad_(False)
    bias.requires_grad_(False)
    out = fused(x.detach(), weight, bias, mu, sigma)
    grad_mu, grad_sigma = torch.autograd.grad(out.sum(), [mu, sigma])
    assert grad_mu.shape == mu.shape and grad_sigma.shape == sigma.shape


def test_a_floored_variance_passes_no_gradient_to_sigma():
    """An all-zero token has variance 0 (floored before the square root): finite gradients, and
    that token contributes nothing to sigma's gradient."""
    x, weight, bias, mu, sigma = inputs(D_IN)
    x = x.detach().clone()
    x[0, 0] = 0.0
    (grad_zero,) = torch.autograd.grad(fused(x[:1, :1], weight, bias, mu, sigma).sum(), [sigma])
    assert torch.equal(grad_zero, torch.zeros_like(grad_zero))
    grads = torch.autograd.grad(fused(x, weight, bias, mu, sigma).sum(), [mu, sigma])
    assert all(torch.isfinite(g).all() for g in grads)


def layer_with(rows: str) -> StochGraspLayer:
    base = nn.Linear(D_IN, D_OUT).double()
    layer = StochGraspLayer(base, "l", StochGraspConfig(k=K, rows=rows)).double().train()
    with torch.no_grad():
        layer.mu.copy_(0.05 * randn(*layer.mu.shape, seed=4))
        layer.sigma_raw.copy_(0.02 + 0.05 * randn(*layer.sigma_raw.shape, seed=5).abs())
    return layer


@pytest.mark.parametrize("rows", ["rows", "shared"])
def test_the_layer_draws_its_noise_from_its_own_stream_in_the_reference_order(rows):
    """The layer's training forward equals the reference fed with the layer's noise seed: eps is
    the next draw of the output's shape from the layer's stream."""
    layer = layer_with(rows)
    x = randn(2, 4, D_IN, seed=1)
    want = reference(x, layer.base.weight.T, layer.base.bias, layer.mu, layer.sigma, layer.group,
                     layer.noise_seed)
    torch.testing.assert_close(layer(x), want)


def test_moments_of_the_outputs_over_many_tokens():
    """Many copies of one token: per output, the sample mean and variance match x (W + mu_hat) + b
    and sum_i x_i^2 sigma_hat_ij^2 within 5 Monte-Carlo errors; a wrong group map, a missing square
    or a noise scaled by sigma instead of sigma^2 under the root would each fail."""
    n = 6000
    layer = layer_with("rows")
    x = randn(1, D_IN, seed=6)
    with torch.no_grad():
        draws = layer(x.expand(n, -1))
        mu_hat, sigma_hat = layer.mu[:, layer.group], layer.sigma[:, layer.group]
        mean = x @ (layer.base.weight.T + mu_hat) + layer.base.bias
        var = x.square() @ sigma_hat.square()
    assert ((draws.mean(0) - mean).abs() < 5 * (var / n).sqrt()).all()
    assert ((draws.var(0) - var).abs() < 5 * var * (2 / (n - 1)) ** 0.5).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_runs_the_product_in_autocasts_dtype_and_keeps_the_noise(dtype):
    """Under CPU autocast the output is in autocast's dtype, the same as the fp32 forward up to its
    rounding, and so are the gradients, which come back in each parameter's own dtype (fp32). The
    noise is large here (sigma 0.3), so that the variance's share of x's gradient counts."""
    torch.manual_seed(0)
    layer = StochGraspLayer(nn.Linear(D_IN, D_OUT), "l", StochGraspConfig(k=K)).train()
    with torch.no_grad():
        layer.sigma_raw.fill_(0.3)
    x = torch.randn(3, D_IN)
    upstream = torch.randn(3, D_OUT)
    params = [layer.mu, layer.sigma_raw]
    results = {}
    for low in (None, dtype):
        layer._noise = None  # the same eps each time
        inp = x.clone().requires_grad_()
        with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=low is not None):
            out = layer(inp)
        assert out.dtype == (low or torch.float32)
        grads = torch.autograd.grad((out.float() * upstream).sum(), [inp, *params])
        assert all(g.dtype == torch.float32 for g in grads)
        results[low] = (out.float(), *grads)
    for got, want in zip(results[dtype], results[None], strict=True):
        assert (got - want).norm() < 0.03 * want.norm()


def draw(seed: int, n: int, shape: tuple[int, ...], threads: int) -> list[torch.Tensor]:
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        stream = NoiseStream(seed, torch.device("cpu"))
        return [stream.normal(shape, torch.float32) for _ in range(n)]
    finally:
        torch.set_num_threads(before)


def test_noise_stream_is_the_same_on_any_thread_count_and_fresh_every_draw():
    """A draw of 2.5 chunks: the same numbers on 1 and 2 threads; draws, chunks and seeds differ."""
    shape = (5, CHUNK // 2)
    one, two = draw(3, 2, shape, 1), draw(3, 2, shape, 2)
    for a, b in zip(one, two, strict=True):
        assert torch.equal(a, b)
    first, second = one
    assert not torch.equal(first, second)
    chunks = first.view(-1).split(CHUNK)
    assert not torch.equal(chunks[0][:1000], chunks[1][:1000])
    assert not torch.equal(draw(4, 1, shape, 1)[0], first)


def test_noise_stream_draws_standard_normals():
    """Mean 0, variance 1 and no correlation between neighbours, chunk borders included, to within
    5 standard errors over 2.5 M numbers."""
    x = draw(0, 1, (5, CHUNK // 2), 2)[0].view(-1).double()
    n = x.numel()
    assert abs(x.mean()) < 5 / n ** 0.5
    assert abs(x.var() - 1) < 5 * (2 / n) ** 0.5
    assert abs((x[1:] * x[:-1]).mean()) < 5 / n ** 0.5
    assert abs((x[CHUNK:2 * CHUNK] * x[:CHUNK]).mean()) < 5 / CHUNK ** 0.5


def compiled_noise() -> None:
    if not noise_module.AVAILABLE:
        pytest.skip("the compiled noise pass was not built (no C compiler)")


class SpyLibrary:
    """The compiled library, counting the calls of each of its functions."""

    def __init__(self, lib: object) -> None:
        self.lib, self.calls = lib, Counter()

    def __getattr__(self, name: str) -> object:
        self.calls[name] += 1
        return getattr(self.lib, name)


def noise_inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    group = torch.randperm(1536, generator=torch.Generator().manual_seed(0)) % 64
    std = torch.rand(300, 64, generator=torch.Generator().manual_seed(1))
    start = torch.randn(300, 1536, generator=torch.Generator().manual_seed(2))
    return group, std, start


def test_compiled_noise_adds_std_times_its_draw_for_a_float32_or_bf16_output(monkeypatch):
    """out += std[:, g] eps in one compiled pass where the draw is float32 on the CPU: eps returned,
    N(0, 1), fresh at every draw, the same draw added into a bf16 output (autocast); another draw
    dtype takes the torch path, in that dtype."""
    compiled_noise()
    spy = SpyLibrary(noise_module._LIB)
    monkeypatch.setattr(noise_module, "_LIB", spy)
    group, std, start = noise_inputs()
    out = start.clone()
    stream = NoiseStream(7, torch.device("cpu"))
    eps = stream.add_scaled(out, std, group, torch.float32)
    second = stream.add_scaled(start.clone(), std, group, torch.float32)
    assert spy.calls["noise_add"] == 2
    torch.testing.assert_close(out, start + std.index_select(1, group) * eps)
    assert abs(eps.mean()) < 5 / eps.numel() ** 0.5 and abs(eps.var() - 1) < 5 * (2 / eps.numel()) ** 0.5
    assert not torch.equal(eps, second)
    low = start.bfloat16()
    low_eps = NoiseStream(7, torch.device("cpu")).add_scaled(low, std, group, torch.float32)
    assert torch.equal(low_eps, eps) and low.dtype == torch.bfloat16 and spy.calls["noise_add"] == 3
    torch.testing.assert_close(low.float(), out, atol=0.05, rtol=0.02)
    for dtype in (torch.float64, torch.bfloat16):  # a float32 std, another draw dtype: torch's path
        other = start.to(dtype)
        other_eps = NoiseStream(7, torch.device("cpu")).add_scaled(other, std, group, dtype)
        assert other_eps.dtype == dtype and spy.calls["noise_add"] == 3
        torch.testing.assert_close(other.float(), start + std.index_select(1, group) * other_eps.float(),
                                   atol=0.05, rtol=0.02)


def test_compiled_noise_does_not_depend_on_the_thread_count():
    compiled_noise()
    group, std, start = noise_inputs()
    before = torch.get_num_threads()
    seen = []
    try:
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            out = start.clone()
            seen.append((out, NoiseStream(7, torch.device("cpu")).add_scaled(out, std, group, torch.float32)))
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(a, b) for other in seen[1:] for a, b in zip(seen[0], other, strict=True))


@pytest.mark.parametrize("position", [0, 1, 2])
def test_compiled_noise_passes_refuse_a_cuda_tensor_before_touching_it(position):
    """Each tensor argument of the compiled passes off the CPU: a clear error, no pointer to C (the
    noise pass's out and std are on the CPU, or it takes the torch path; its group is checked)."""
    compiled_noise()
    with FakeTensorMode(allow_non_fake_inputs=False):
        devices = ["cuda" if i == position else "cpu" for i in range(3)]
        args = [torch.zeros(4, 8, device=devices[0]), torch.zeros(4, 8, device=devices[1]),
                torch.zeros(8, dtype=torch.long, device=devices[2])]
        with pytest.raises(RuntimeError, match="CPU tensors only, got one on cuda"):
            noise_module.group_dot(*args, 2)
        if position == 2:
            with pytest.raises(RuntimeError, match="CPU tensors only, got one on cuda"):
                NoiseStream(7, torch.device("cpu")).add_scaled(torch.zeros(4, 8), torch.ones(4, 2), args[2],
                                                                torch.float32)


def test_noise_stream_normal_is_the_dtype_asked_for():
    stream = NoiseStream(7, torch.device("cpu"))
    assert stream.normal((3, 4), torch.float64).dtype == torch.float64
    assert stream.normal((3, 4), torch.bfloat16).dtype == torch.bfloat16


def test_compiled_group_dot_is_the_group_sum():
    compiled_noise()
    group = torch.randperm(1536, generator=torch.Generator().manual_seed(0)) % 64
    gy, eps = torch.randn(2, 300, 1536, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(noise_module.group_dot(gy, eps, group, 64), group_sum(gy * eps, group, 64,
                                                                                     torch.float32))


@pytest.mark.parametrize("rows", [D_IN, 1])
def test_compiled_path_equals_the_reference_with_its_own_draw(rows):
    """float32 on the CPU (the compiled passes): outputs and every gradient as the materialised
    reference given the same eps (read back from a second stream with the same seed)."""
    compiled_noise()
    args = [None if t is None else t.detach().float().requires_grad_() for t in inputs(rows)]
    upstream = randn(2, 4, D_OUT, seed=8).float()
    eps = NoiseStream(9, torch.device("cpu")).add_scaled(torch.zeros(8, D_OUT), torch.ones(8, K), GROUP,
                                                          torch.float32).view(2, 4, D_OUT)
    x, weight, bias, mu, sigma = args
    mu_hat = mu.expand(D_IN, -1)[:, GROUP]
    sigma_hat = sigma.expand(D_IN, -1)[:, GROUP]
    want = x @ (weight + mu_hat) + bias + (x.square() @ sigma_hat.square()).sqrt() * eps
    got = fused(*args)
    torch.testing.assert_close(got, want)
    for g, w in zip(torch.autograd.grad((got * upstream).sum(), args),
                    torch.autograd.grad((want * upstream).sum(), args), strict=True):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5)
