"""GRASP, weight-space GRASP and StochGRASP on tiny BERT and GPT-2 (with Conv1D)."""

import copy
import re

import pytest
import torch
from torch import nn

from imc_sim.backbones import is_head
from imc_sim.errors import ImcSimError
from imc_sim.peft import get_method
from imc_sim.peft.grasp import GraspLayer
from imc_sim.peft.stochgrasp import StochGraspLayer, set_eval_mode, sigma_penalty, weight_scales
from imc_sim.peft.targets import find_targets, in_out_features, names_matching

VARIANTS = [
    ("grasp", {"k": 4}),
    ("grasp", {"k": 4, "learn_scale": False}),
    ("grasp", {"k": 4, "learn_shift": False}),
    ("grasp", {"k": 3, "targets": "kv-ff2"}),
    ("grasp-w", {"k": 4}),
    ("grasp-w", {"k": 4, "rows": "shared"}),
    ("stochgrasp", {"k": 4}),
    ("stochgrasp", {"k": 4, "rows": "shared"}),
    ("grasp-w", {"k": 4, "sampling": "weights"}),
    ("stochgrasp", {"k": 4, "sampling": "weights"}),
    ("stochgrasp", {"k": 4, "rows": "shared", "sampling": "weights"}),
    ("bitfit", {}),
    ("lora", {}),
    ("ia3", {}),
]


def attach(model, name, options):
    method = get_method(name)
    config = method.make_config({"seed": 0, **options})
    return method, config, method.attach(model, config)


def randomize_trainable(model):
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad and not is_head(name, model):
                p.add_(0.1 * torch.randn(p.shape, generator=gen))


@pytest.mark.parametrize("arch", ["bert", "gpt2"])
@pytest.mark.parametrize(("name", "options"), VARIANTS)
def test_merge_equals_adapted_logits(arch, name, options, tiny_bert, tiny_gpt2, token_batch):
    model = tiny_bert if arch == "bert" else tiny_gpt2
    with torch.no_grad():
        base = model(**token_batch).logits
    method, _, adapted = attach(model, name, options)
    randomize_trainable(adapted)
    adapted.eval()
    with torch.no_grad():
        expected = adapted(**token_batch).logits
        merged = method.merge(adapted)
        got = merged(**token_batch).logits
    # the adapter acts, by 100x the tolerance below: an adapter lost in the merge would fail
    assert (expected - base).abs().max() > 1e-4 * expected.abs().max()
    assert not any(isinstance(m, (GraspLayer, StochGraspLayer)) for m in merged.modules())
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-6 * expected.abs().max())


def test_merged_model_is_plain_hf_state_dict(tiny_bert):
    keys = set(copy.deepcopy(tiny_bert).state_dict())
    method, _, adapted = attach(tiny_bert, "grasp", {"k": 4})
    assert set(method.merge(adapted).state_dict()) == keys


@pytest.mark.parametrize("arch", ["bert", "gpt2"])
def test_grasp_parameter_count_formula(arch, tiny_bert, tiny_gpt2):
    model = tiny_bert if arch == "bert" else tiny_gpt2
    n_targets = len(find_targets(model, "all-linear"))
    _, _, adapted = attach(model, "grasp", {"k": 5})
    trainable = sum(p.numel() for n, p in adapted.named_parameters()
                    if p.requires_grad and not is_head(n, adapted))
    assert trainable == n_targets * 2 * 5
    assert n_targets == (12 if arch == "bert" else 8)


@pytest.mark.parametrize(("name", "rows"), [("stochgrasp", "rows"), ("stochgrasp", "shared"),
                                            ("grasp-w", "rows"), ("grasp-w", "shared")])
def test_weight_space_parameter_count_formula(name, rows, tiny_bert):
    k = 4
    dims = [in_out_features(tiny_bert.get_submodule(n))
            for n in find_targets(tiny_bert, "all-linear")]
    per_param = sum(d_in * k if rows == "rows" else k for d_in, _ in dims)
    _, _, adapted = attach(tiny_bert, name, {"k": k, "rows": rows})
    trainable = sum(p.numel() for n, p in adapted.named_parameters()
                    if p.requires_grad and not is_head(n, adapted))
    assert trainable == per_param * (2 if name == "stochgrasp" else 1)


@pytest.mark.parametrize(("name", "options"), VARIANTS[:11])
def test_only_adapter_and_head_get_gradients(name, options, tiny_bert, token_batch):
    method, config, adapted = attach(tiny_bert, name, options)
    adapted.train()
    out = adapted(**token_batch, labels=torch.tensor([0, 1, 1]))
    extra = method.extra_loss(adapted, config)
    (out.loss if extra is None else out.loss + extra).backward()
    got_grad = {n for n, p in adapted.named_parameters() if p.grad is not None}
    trainable = {n for n, p in adapted.named_parameters() if p.requires_grad}
    assert got_grad == trainable
    assert all(".base." not in n for n in got_grad)
    assert any(is_head(n, adapted) for n in got_grad) and any(not is_head(n, adapted) for n in got_grad)


def test_presets_select_expected_layers(tiny_bert, tiny_gpt2):
    kv = find_targets(tiny_bert, "kv-ff2")
    assert [n.split("layer.0.")[-1] for n in kv if ".layer.0." in n] == [
        "attention.self.key", "attention.self.value", "output.dense"]
    assert find_targets(tiny_bert, "ff2") == [f"bert.encoder.layer.{i}.output.dense" for i in (0, 1)]
    assert find_targets(tiny_gpt2, "ff2") == ["transformer.h.0.mlp.c_proj",
                                              "transformer.h.1.mlp.c_proj"]
    assert "bert.pooler.dense" not in find_targets(tiny_bert, "all-linear")


def test_unknown_target_pattern_is_an_error(tiny_bert):
    with pytest.raises(ImcSimError, match="matches no Linear/Conv1D"):
        attach(tiny_bert, "grasp", {"targets": "query,nonexistent"})


def test_k_larger_than_d_is_an_error(tiny_bert):
    with pytest.raises(ImcSimError, match="K must be in"):
        attach(tiny_bert, "grasp", {"k": 33})


def test_gamma_at_zero_stays_finite(tiny_bert, token_batch):
    _, _, adapted = attach(tiny_bert, "grasp", {"k": 4})
    with torch.no_grad():
        for m in adapted.modules():
            if isinstance(m, GraspLayer):
                m.gamma.zero_()
    assert torch.isfinite(adapted(**token_batch).logits).all()


def test_stochgrasp_samples_match_mu_and_sigma(tiny_bert):
    _, _, adapted = attach(tiny_bert, "stochgrasp", {"k": 2})
    layer = next(m for m in adapted.modules() if isinstance(m, StochGraspLayer))
    with torch.no_grad():
        layer.mu.copy_(torch.linspace(-0.5, 0.5, layer.mu.numel()).view_as(layer.mu))
        layer.sigma_raw.fill_(0.2)
    layer.train()
    draws = torch.stack([layer.delta() for _ in range(2000)])  # [N, D_in, D_out]
    mu_hat = layer.mu[:, layer.group].detach()
    # Monte-Carlo: std of a mean = 0.2/sqrt(2000) = 0.0045; of a std ~ 0.2/sqrt(4000) = 0.0032
    assert (draws.mean(0) - mu_hat).abs().max() < 6 * 0.0045
    assert (draws.std(0) - 0.2).abs().max() < 6 * 0.0032


def test_training_noise_fresh_each_forward_and_eval_modes(tiny_bert, token_batch):
    _, _, adapted = attach(tiny_bert, "stochgrasp", {"k": 4})
    adapted.train()
    torch.manual_seed(0)
    layer = next(m for m in adapted.modules() if isinstance(m, StochGraspLayer))
    assert not torch.equal(layer.delta(), layer.delta())
    adapted.eval()
    with torch.no_grad():
        mean = adapted(**token_batch).logits
        assert torch.equal(mean, adapted(**token_batch).logits)
        set_eval_mode(adapted, "inject", sigma_noise=0.05, seed=1)
        a = adapted(**token_batch).logits
        assert torch.equal(a, adapted(**token_batch).logits)  # one realization, held
        set_eval_mode(adapted, "inject", sigma_noise=0.05, seed=2)
        assert not torch.allclose(a, adapted(**token_batch).logits)
        set_eval_mode(adapted, "inject", sigma_noise=0.0, seed=2)
        assert torch.allclose(adapted(**token_batch).logits, mean, atol=1e-6)
    with pytest.raises(ImcSimError):
        set_eval_mode(adapted, "bogus")


def test_relative_injection_scales_sigma_by_each_layers_weight_std(tiny_bert):
    """inject with relative=True draws sigma = sigma_noise * std(W) per layer: the same draw as
    an absolute injection at that sigma, different between layers of different weight scales."""
    _, _, adapted = attach(tiny_bert, "stochgrasp", {"k": 4})
    scales = weight_scales(adapted)
    layers = [m for m in adapted.modules() if isinstance(m, StochGraspLayer)]
    assert len(scales) == len(layers) and len(set(scales.values())) > 1
    for layer, scale in zip(layers, scales.values(), strict=True):
        assert scale == pytest.approx(float(layer.base.weight.std()))
        layer.set_eval_mode("inject", 0.5, torch.Generator().manual_seed(3), relative=True)
        relative = layer.realization.clone()
        layer.set_eval_mode("inject", 0.5 * scale, torch.Generator().manual_seed(3))
        torch.testing.assert_close(relative, layer.realization, rtol=0, atol=0)
        assert relative.std().item() == pytest.approx(0.5 * scale, rel=0.1)


def test_eq6_penalty_hand_computed():
    lin = torch.nn.Linear(3, 4)  # D_in = 3, D_out = 4
    from imc_sim.peft.stochgrasp import StochGraspConfig

    for rows in ("rows", "shared"):
        layer = StochGraspLayer(lin, "x", StochGraspConfig(k=2, rows=rows))
        with torch.no_grad():
            layer.sigma_raw.copy_(torch.arange(1.0, 1 + layer.sigma_raw.numel()).view_as(
                layer.sigma_raw) * 0.01)
        sigma = layer.sigma.detach()
        expected = 0.0
        for i in range(3):          # every weight W[i, j] counts once, as eq. 6 writes it
            for j in range(4):
                f = i if rows == "rows" else 0
                expected += (float(sigma[f, layer.group[j]]) - 0.02) ** 2
        assert layer.penalty(0.02).item() == pytest.approx(expected, rel=1e-5)


def test_extra_loss_is_lambda_times_penalty(tiny_bert):
    method, config, adapted = attach(tiny_bert, "stochgrasp", {"k": 4, "lam": 0.07,
                                                                "sigma_target": 0.03})
    expected = 0.07 * sigma_penalty(adapted, 0.03)
    assert method.extra_loss(adapted, config).item() == pytest.approx(expected.item())
    assert get_method("grasp-w").extra_loss(adapted, config) is None


def test_sigma_init_range_and_positive(tiny_bert):
    _, _, adapted = attach(tiny_bert, "stochgrasp", {"k": 4})
    sigmas = torch.cat([m.sigma.flatten() for m in adapted.modules()
                        if isinstance(m, StochGraspLayer)])
    assert sigmas.min() >= 0.001 and sigmas.max() <= 0.005 + 1e-6
    layer = next(m for m in adapted.modules() if isinstance(m, StochGraspLayer))
    with torch.no_grad():
        layer.sigma_raw.fill_(-0.3)
    assert (layer.sigma > 0).all()


@pytest.mark.parametrize("name", ["lora", "ia3", "grasp", "bitfit"])
def test_head_counted_apart_for_every_method(name, tiny_bert):
    from imc_sim.training.loop import count_params

    _, _, adapted = attach(tiny_bert, name, {})
    counts = count_params(adapted)
    assert counts["head_params"] == 32 * 2 + 2  # the classifier, also under peft's wrapper
    total = sum(p.numel() for p in adapted.parameters())
    assert counts["base_params"] == total - counts["head_params"]  # the frozen base and the adapter
    if name == "lora":  # r=8 on query and value of 2 layers: 2 * 2 * (32*8 + 8*32)
        assert counts["trainable_params"] == 2 * 2 * 2 * 32 * 8


@pytest.mark.parametrize("options", [{}, {"learn_scale": False}, {"learn_shift": False}])
def test_grasp_fused_forward_and_gradients_equal_plain_autograd(options):
    """The one-node forward/backward of eq. 1 against (x - beta_hat) / gamma_hat through autograd,
    with one gamma inside the dead zone |gamma| < gamma_min (straight-through)."""
    from imc_sim.peft.grasp.config import GraspConfig
    from imc_sim.peft.grasp.layer import GraspLayer

    layer = GraspLayer(torch.nn.Linear(10, 3).double(), "l", GraspConfig(k=4, **options)).double()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in (layer.gamma, layer.beta):
            if p is not None:
                p.copy_(torch.randn(4, generator=gen, dtype=torch.double))
        if layer.gamma is not None:
            layer.gamma[0] = 0.003  # projected to gamma_min = 0.01
    x = torch.randn(2, 5, 10, dtype=torch.double, generator=gen, requires_grad=True)
    out = torch.randn(2, 5, 3, dtype=torch.double, generator=gen)
    params = [p for p in (x, layer.gamma, layer.beta) if p is not None]
    fused = torch.autograd.grad((layer(x) * out).sum(), params)
    gamma, beta = layer.expanded()
    plain_in = x if beta is None else x - beta
    plain_in = plain_in if gamma is None else plain_in / gamma
    plain = torch.autograd.grad((layer.base(plain_in) * out).sum(), params)
    torch.testing.assert_close(layer(x), layer.base(plain_in))
    for got, want in zip(fused, plain, strict=True):
        torch.testing.assert_close(got, want)


def test_grasp_without_scale_and_shift_is_an_error(tiny_bert):
    with pytest.raises(ImcSimError, match="learns nothing"):
        attach(tiny_bert, "grasp", {"learn_scale": False, "learn_shift": False})


def sampling_layer(rows: str, sampling: str) -> StochGraspLayer:
    """A 6 -> 10 StochGRASP layer, K = 3, with random mu and sigma of a few hundredths."""
    from imc_sim.peft.stochgrasp import StochGraspConfig

    gen = torch.Generator().manual_seed(4)
    base = torch.nn.Linear(6, 10)
    layer = StochGraspLayer(base, "l", StochGraspConfig(k=3, rows=rows, sampling=sampling)).train()
    with torch.no_grad():
        base.weight.copy_(0.3 * torch.randn(base.weight.shape, generator=gen))
        base.bias.copy_(0.1 * torch.randn(base.bias.shape, generator=gen))
        layer.mu.copy_(0.05 * torch.randn(layer.mu.shape, generator=gen))
        layer.sigma_raw.copy_(0.02 + 0.04 * torch.rand(layer.sigma_raw.shape, generator=gen))
    return layer


def exact_moments(layer: StochGraspLayer, x: torch.Tensor):
    """Per output: mean x (W + mu_hat) + b and variance sum_i x_i^2 sigma_hat[f(i), g(j)]^2."""
    w = layer.base.weight.T
    mu = layer.mu.expand(x.shape[-1], -1)[:, layer.group]
    sigma = layer.sigma.expand(x.shape[-1], -1)[:, layer.group]
    return x @ (w + mu) + layer.base.bias, x.square() @ sigma.square()


@pytest.mark.parametrize("rows", ["rows", "shared"])
@pytest.mark.parametrize("sampling", ["weights", "outputs"])
def test_sampling_paths_give_each_output_its_exact_mean_and_variance(rows, sampling):
    n = 4000
    layer = sampling_layer(rows, sampling)
    x = torch.randn(1, 6, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        # outputs: noise independent per token, so n tokens are n draws; weights: one dW a forward
        draws = (layer(x.expand(n, -1)) if sampling == "outputs"
                 else torch.cat([layer(x) for _ in range(n)]))
        mean, var = exact_moments(layer, x)
    # Monte Carlo: the mean's error has std sqrt(var / n), the variance's var sqrt(2 / (n - 1))
    assert ((draws.mean(0) - mean).abs() < 5 * (var / n).sqrt()).all()
    assert ((draws.var(0) - var).abs() < 5 * var * (2 / (n - 1)) ** 0.5).all()


@pytest.mark.parametrize("rows", ["rows", "shared"])
def test_sampling_paths_agree_on_the_expected_gradients_of_mu_and_sigma(rows):
    """For L = sum_t sum_j c_j y_tj^2, E[L] = sum c (mean^2 + var) in closed form: the average
    gradient of each path over n draws matches the closed form's, within 5 Monte-Carlo errors."""
    n = 1500
    x = torch.randn(2, 6, generator=torch.Generator().manual_seed(6))
    c = torch.linspace(-1, 1, 10)
    exact = sampling_layer(rows, "weights")
    mean, var = exact_moments(exact, x)
    want = torch.autograd.grad((c * (mean.square() + var)).sum(), [exact.mu, exact.sigma_raw])
    for sampling in ("weights", "outputs"):
        layer = sampling_layer(rows, sampling)
        samples = [torch.cat([g.flatten() for g in torch.autograd.grad(
            (c * layer(x).square()).sum(), [layer.mu, layer.sigma_raw])]) for _ in range(n)]
        stacked = torch.stack(samples)
        error = stacked.std(0) / n ** 0.5
        target = torch.cat([g.flatten() for g in want])
        assert ((stacked.mean(0) - target).abs() < 5 * error + 1e-7).all(), sampling


def test_output_sampling_changes_training_only():
    """Evaluation (mean, held realizations) and merging do not depend on the sampling."""
    layers = {s: sampling_layer("rows", s).eval() for s in ("weights", "outputs")}
    x = torch.randn(3, 6, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        torch.testing.assert_close(layers["outputs"](x), layers["weights"](x))
        torch.testing.assert_close(layers["outputs"].merged()(x), layers["weights"].merged()(x))
        for layer in layers.values():
            layer.set_eval_mode("sample", generator=torch.Generator().manual_seed(1))
        torch.testing.assert_close(layers["outputs"](x), layers["weights"](x))


def test_target_patterns_select_in_model_order_once(tiny_bert):
    """Module-name patterns (suffixes here), given in any order and repeated: each layer once, in
    the model's order; a pattern that matches nothing, one that is not a valid regular expression,
    and an empty list are one-line errors."""
    assert find_targets(tiny_bert, "value, query,query") == [
        f"bert.encoder.layer.{i}.attention.self.{p}" for i in (0, 1) for p in ("query", "value")]
    assert find_targets(tiny_bert, r"bert\.encoder\.layer\.1\.attention\.self\.(key|value)") == [
        "bert.encoder.layer.1.attention.self.key", "bert.encoder.layer.1.attention.self.value"]
    for targets in ("query,nothing", "query["):
        bad = targets.split(",")[-1]
        with pytest.raises(ImcSimError, match=re.escape(f"target pattern {bad!r} matches no Linear/Conv1D "
                                                        "module (presets: all-linear, kv-ff2, ff2)")):
            find_targets(tiny_bert, targets)
    with pytest.raises(ImcSimError, match=r"^empty --targets; give a preset or module-name patterns$"):
        find_targets(tiny_bert, " , ")


def test_a_preset_that_does_not_know_the_model_says_what_it_has():
    mlp = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2), nn.Linear(2, 2), nn.Linear(2, 2))
    with pytest.raises(ImcSimError) as info:
        find_targets(mlp, "ff2")
    assert str(info.value) == ("target preset 'ff2' does not know the layers of model type 'Sequential' "
                               "(4 Linear/Conv1D modules, e.g. 0, 2, 3); give --targets as module-name "
                               "patterns")


def test_patterns_over_no_layers_say_so():
    with pytest.raises(ImcSimError) as info:
        names_matching([], "ff2", "--digital-layers")
    assert str(info.value) == "--digital-layers pattern 'ff2': no analog layers"


def test_a_module_the_loader_initialised_at_random_trains_with_every_method(tiny_bert):
    """The head includes a module the model's folder lacked (a pooler): GRASP's freezing keeps it
    trainable (session 31's mutation run: freezing with no model left it frozen, unseen)."""
    from imc_sim.backbones import FRESH_MODULES

    setattr(tiny_bert, FRESH_MODULES, frozenset({"bert.pooler"}))
    method = get_method("grasp")
    model = method.attach(tiny_bert, method.make_config({"k": 4, "seed": 0}))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert {"bert.pooler.dense.weight", "bert.pooler.dense.bias", "classifier.weight"} <= trainable
    assert "bert.embeddings.word_embeddings.weight" not in trainable
