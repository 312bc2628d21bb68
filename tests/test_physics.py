"""Physics of the device layer: ideal = digital, drift direction, compensation, noise laws, seeds."""

import dataclasses
import math

import pytest
import torch
from conftest import make_tiny_bert, make_tiny_gpt2

from imc_sim.crossbar.mapping import deploy_model
from imc_sim.crossbar.streams import ChipStreams
from imc_sim.crossbar.tiles import CrossbarLinear
from imc_sim.deploy.chip import Chip
from imc_sim.deploy.sweep import drift_sweep
from imc_sim.devices import build_family
from imc_sim.devices.aihwkit_models import build_noise_model
from imc_sim.devices.characterize import programming_sigma
from imc_sim.devices.profile import load_profile, profile_from_dict

YEAR = 365 * 86400.0


@pytest.mark.parametrize("make", [make_tiny_bert, make_tiny_gpt2])
def test_ideal_profile_reproduces_digital_logits(make, token_batch):
    digital = make()
    with torch.no_grad():
        expected = digital(**token_batch).logits
    deployment = deploy_model(make(), load_profile("ideal"), analog_head=True)
    Chip(deployment, 0).drift_to(YEAR)
    with torch.no_grad():
        got = deployment.model(**token_batch).logits
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)


def quiet(name: str, **changes):
    """A shipped profile with its read noise off (drift alone) and optional field changes."""
    profile = load_profile(name)
    return dataclasses.replace(profile, read_noise={**profile.read_noise, "scale": 0.0}, **changes)


STATE_INDEPENDENT = profile_from_dict({"name": "si", "description": "d", "source": "s",
                                       "model": "state-independent", "read_noise": {"scale": 0.0}})


@pytest.mark.parametrize("profile", [quiet("pcm"), STATE_INDEPENDENT], ids=["pcm", "state-independent"])
def test_drift_never_raises_conductance(profile):
    model = build_noise_model(profile)
    torch.manual_seed(0)
    g_target = torch.rand(50_000) * 25.0
    g_prog = model.apply_programming_noise_to_conductance(g_target.clone())
    nu = model.generate_drift_coefficients(g_target.clone())
    assert (nu >= 0).all()
    previous = g_prog
    for t in (1.0, 3600.0, 86400.0, YEAR, 10 * YEAR):
        g = model.apply_drift_noise_to_conductance(g_prog, nu, t)
        assert (g <= previous + 1e-6).all()
        previous = g
    assert previous.mean() < 0.8 * g_prog.mean()  # and it does drift


def mean_output(layer: CrossbarLinear, x: torch.Tensor) -> float:
    with torch.no_grad():
        return layer(x).abs().mean().item()


@pytest.mark.parametrize("compensation, lo, hi", [("none", 0.0, 0.85), ("global", 0.95, 1.05)])
def test_global_compensation_restores_output_magnitude(compensation, lo, hi):
    base = load_profile("pcm")
    profile = dataclasses.replace(base, compensation=compensation,
                                  periphery=dataclasses.replace(base.periphery, out_noise=0.0))
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 64, bias=False)
    layer = CrossbarLinear(linear, profile, build_family(profile))
    x = torch.randn(512, 64)
    streams = ChipStreams(0)
    layer.program(streams, "layer")
    layer.drift(0.0, streams, "layer")
    programmed = mean_output(layer, x)
    layer.drift(10 * YEAR, streams, "layer")
    assert lo <= mean_output(layer, x) / programmed <= hi


def test_pcm_programming_noise_follows_its_law():
    profile = load_profile("pcm")
    sigma = programming_sigma(profile, points=6, samples=40_000)
    coeffs, g_max = profile.programming["coeffs"], profile.conductance["g_max"]
    for g, measured in zip(sigma["target"], sigma["sigma"], strict=True):
        if g < 0.3 * g_max:  # the clamp at 0 uS cuts the low tail
            continue
        x = g / g_max
        assert measured == pytest.approx(sum(c * x**i for i, c in enumerate(coeffs)), rel=0.03)


def test_fefet_programming_noise_follows_the_binomial_law():
    profile = load_profile("fefet")
    model = build_noise_model(profile)
    g_min, g_max = profile.conductance["g_min"], profile.conductance["g_max"]
    n, floor = profile.programming["n_domains"], profile.programming["sigma_floor"]
    torch.manual_seed(0)
    for p in (0.3, 0.5, 0.7):
        g = torch.full((100_000,), g_min + p * (g_max - g_min))
        measured = model.apply_programming_noise_to_conductance(g).std().item()
        expected = (g_max - g_min) * math.sqrt(p * (1 - p) / n) + floor
        assert measured == pytest.approx(expected, rel=0.03)


def test_gaussian_profile_adds_sigma_in_weight_units():
    deployment = deploy_model(make_tiny_bert(), load_profile("gaussian"))
    layers = list(deployment.layers.values())
    before = torch.cat([layer.dense.flatten() for layer in layers])  # the targets, unprogrammed
    Chip(deployment, 0).drift_to(86400.0)
    after = torch.cat([layer.dense.flatten() for layer in layers])
    assert (after - before).std().item() == pytest.approx(0.01, rel=0.05)


def sweep_logits(seeds, token_batch):
    deployment = deploy_model(make_tiny_bert(), load_profile("pcm"))
    values = []

    def measure():
        with torch.no_grad():
            values.append(deployment.model(**token_batch).logits.clone())
        return 0.0

    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    drift_sweep(deployment, measure, seeds, [1.0, YEAR], progress=False)
    assert torch.equal(torch.rand(1), expected_next)  # the caller's generator is left alone
    return values


def test_same_seed_same_chip_different_seed_different_chip(token_batch):
    a = sweep_logits([0, 1], token_batch)
    b = sweep_logits([0, 1], token_batch)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[0], a[2])  # seed 0 and seed 1 at 1 s
    assert not torch.equal(a[0], a[1])  # the same chip at 1 s and at 1 y
