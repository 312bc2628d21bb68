"""The StochGRASP and GRASP layers, the values mutation testing found unchecked (docs/mutation.md):
seeds per layer and config, the evaluation realizations, dW = mu + sigma eps (from a generator or
the layer's stream, in its dtype) and the output-sampled perturbation in closed form (fp64 and fp32,
no autocast inside), buffers kept out of the state dict, the messages of bad input; GRASP's group
map per layer, its scale switched off, its merge into a bias-free or bf16 layer and its projection."""

import pytest
import torch

from imc_sim.errors import ImcSimError
from imc_sim.peft.grasp.config import GraspConfig
from imc_sim.peft.grasp.layer import GraspLayer, projected
from imc_sim.peft.grouping import expand
from imc_sim.peft.stochgrasp.config import StochGraspConfig
from imc_sim.peft.stochgrasp.layer import StochGraspLayer
from imc_sim.peft.stochgrasp.noise import NoiseStream

D_IN, D_OUT, K = 6, 10, 4


def layer(name="enc.q", dtype=torch.float32, **config) -> StochGraspLayer:
    base = torch.nn.Linear(D_IN, D_OUT).to(dtype)
    with torch.no_grad():
        base.weight.copy_(torch.randn(D_OUT, D_IN, generator=torch.Generator().manual_seed(0)))
    out = StochGraspLayer(base, name, StochGraspConfig(**{"k": K, **config}))
    with torch.no_grad():
        out.mu.copy_(torch.randn(out.mu.shape, generator=torch.Generator().manual_seed(1)))
    return out


def test_groups_sigma_init_and_noise_depend_on_the_config_seed_and_the_layer_name():
    """Group map, sigma's initial values and the training-noise stream differ per layer and per
    config seed, and never come from torch's global generator."""
    def draws(name, seed):
        m = layer(name, seed=seed)
        return m.group, m.sigma_raw.detach(), m.noise().normal((8,), torch.float32)

    reference = draws("enc.q", 0)
    for other in (draws("enc.k", 0), draws("enc.q", 1)):
        for a, b in zip(reference, other, strict=True):
            assert not torch.equal(a, b)
    torch.manual_seed(123)
    again = draws("enc.q", 0)
    for a, b in zip(reference, again, strict=True):
        assert torch.equal(a, b)


def test_group_map_and_entry_counts_stay_out_of_the_state_dict():
    assert set(layer().state_dict()) == {"mu", "sigma_raw", "base.weight", "base.bias"}


def test_too_many_groups_names_the_layer():
    with pytest.raises(ImcSimError, match=r"^K must be in \[1, 10\] for enc\.q \(D=10\); got K=11$"):
        layer(k=11)


def test_sample_delta_is_mu_plus_std_eps_with_the_given_generator():
    m = layer(dtype=torch.float64)
    m.mu.data = m.mu.data.double()
    std = m.sigma.detach()
    delta = m.sample_delta(std, torch.Generator().manual_seed(9))
    eps = torch.randn(D_IN, D_OUT, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    assert delta.dtype == torch.float64
    torch.testing.assert_close(delta, expand(m.mu, m.group) + expand(std, m.group) * eps, rtol=0, atol=0)


def test_evaluation_realizations():
    """mean: dW = mu; sample: mu + sigma eps from the given generator; inject: std sigma_noise
    (0 by default); and each mode replaces the previous realization."""
    m = layer().eval()
    mean = expand(m.mu, m.group).detach()
    eps = torch.randn(D_IN, D_OUT, generator=torch.Generator().manual_seed(4))
    m.set_eval_mode("sample", generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(m.delta(), mean + expand(m.sigma, m.group).detach() * eps)
    m.set_eval_mode("mean")
    assert m.realization is None and torch.equal(m.delta(), mean)
    m.set_eval_mode("inject")  # sigma_noise defaults to 0: dW = mu exactly
    assert torch.equal(m.delta(), mean)
    m.set_eval_mode("inject", 0.5, torch.Generator().manual_seed(4))
    torch.testing.assert_close(m.delta(), mean + 0.5 * eps)
    x = torch.randn(3, D_IN, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(m(x), x @ (m.base.weight.T + mean + 0.5 * eps) + m.base.bias)


def test_deterministic_layer_samples_its_mean_and_has_no_penalty():
    m = layer(stochastic=False).eval()
    m.set_eval_mode("sample")
    assert m.realization is None and torch.equal(m.delta(), expand(m.mu, m.group).detach())
    assert torch.equal(m.penalty(0.01), torch.zeros(()))


@pytest.mark.parametrize("mode, sigma, message", [
    ("median", 0.0, r"^unknown evaluation mode 'median'; choose mean, sample, inject$"),
    ("inject", -0.5, r"^sigma_noise must be >= 0, got -0\.5$"),
])
def test_bad_evaluation_mode(mode, sigma, message):
    with pytest.raises(ImcSimError, match=message):
        layer().set_eval_mode(mode, sigma)


def test_output_sampled_forward_of_a_bf16_layer_is_bf16():
    """A layer cast to bf16 (mu and sigma too): the variance is summed in fp32, the output is bf16."""
    m = layer().to(torch.bfloat16).train()
    assert m.sigma.dtype == torch.bfloat16
    x = torch.randn(3, D_IN, generator=torch.Generator().manual_seed(2)).bfloat16()
    y = m(x)
    assert y.dtype == torch.bfloat16 and torch.isfinite(y).all()


def test_output_sampled_forward_of_a_bias_free_layer_is_the_biased_one_less_its_bias():
    """The same layer with and without its bias, the same noise stream: outputs differ by b."""
    with_bias = layer().train()
    without = layer().train()
    without.base.bias = None
    x = torch.randn(5, D_IN, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(without(x), with_bias(x) - with_bias.base.bias)


def test_sample_delta_from_the_layers_own_stream_is_drawn_in_the_layers_dtype():
    """Without a generator, eps is the next draw of the layer's stream, in the weights' dtype."""
    m = layer(dtype=torch.float64)
    m.mu.data = m.mu.data.double()
    std = m.sigma.detach()
    delta = m.sample_delta(std)
    eps = NoiseStream(m.noise_seed, torch.device("cpu")).normal((D_IN, D_OUT), torch.float64)
    expected = expand(m.mu, m.group) + expand(std, m.group) * eps
    torch.testing.assert_close(delta, expected, rtol=1e-12, atol=1e-12)


def grasp_layer(name: str = "enc.q", bias: bool = True, **config) -> GraspLayer:
    base = torch.nn.Linear(D_IN, D_OUT, bias=bias)
    return GraspLayer(base, name, GraspConfig(**{"k": 3, **config}))


def test_grasp_group_map_is_per_layer_out_of_the_state_dict_and_named_in_errors():
    a, b = grasp_layer("enc.q"), grasp_layer("enc.k")
    assert not torch.equal(a.group, b.group)
    assert torch.equal(a.group, grasp_layer("enc.q").group)
    assert set(a.state_dict()) == {"gamma", "beta", "base.weight", "base.bias"}
    with pytest.raises(ImcSimError, match=r"^K must be in \[1, 6\] for enc\.q \(D=6\); got K=7$"):
        grasp_layer(k=7)


def test_grasp_without_a_learned_scale_or_shift_has_no_gamma_or_beta():
    m = grasp_layer(learn_scale=False)
    assert m.gamma is None
    assert [n for n, _ in m.named_parameters() if n.startswith(("gamma", "beta"))] == ["beta"]
    m = grasp_layer(learn_shift=False)
    assert m.beta is None
    assert [n for n, _ in m.named_parameters() if n.startswith(("gamma", "beta"))] == ["gamma"]


def test_grasp_merges_into_a_layer_without_bias_and_keeps_the_weights_dtype():
    """b' = -(beta_hat / gamma_hat) W where the base has no bias; a bf16 base merges in bf16."""
    m = grasp_layer(bias=False)
    with torch.no_grad():
        m.gamma.copy_(torch.tensor([2.0, -0.5, 4.0]))
        m.beta.copy_(torch.tensor([0.1, 0.2, -0.3]))
    w, b = m.effective_weight()
    gamma, beta = expand(m.gamma, m.group), expand(m.beta, m.group)
    w_in_out = m.base.weight.detach().T
    torch.testing.assert_close(w, w_in_out / gamma[:, None])
    torch.testing.assert_close(b, -beta @ (w_in_out / gamma[:, None]))
    low = grasp_layer()
    low.base.to(torch.bfloat16)
    w_low, b_low = low.effective_weight()
    assert w_low.dtype == torch.bfloat16 and b_low.dtype == torch.bfloat16


def test_projected_scale_counts_zero_as_positive():
    got = projected(torch.tensor([0.0, -0.0, -0.001, 0.5]), 0.01)
    torch.testing.assert_close(got, torch.tensor([0.01, 0.01, -0.01, 0.5]))
