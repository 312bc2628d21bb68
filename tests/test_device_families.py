"""Device families: each law against its aihwkit noise model in distribution, and the family's
reproducibility, device-agnosticism, t = 0 behaviour and profile plumbing."""

import dataclasses

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from imc_sim.devices import FAMILIES, DeviceFamily, build_family
from imc_sim.devices.aihwkit_models import build_noise_model
from imc_sim.devices.characterize import drift_curves, programming_sigma
from imc_sim.devices.moments import MomentTables
from imc_sim.devices.profile import DeviceProfile, load_profile, profile_from_dict, shipped_profiles
from imc_sim.devices.schema import SECTIONS
from imc_sim.errors import ImcSimError

YEAR = 365 * 86400.0
TIMES = (0.0, 1.0, 3600.0, 86400.0, YEAR)
LEVELS = (0.0, 0.05, 0.25, 0.5, 1.0)  # targets / g_max: the nu fit is unclipped below ~0.2
N = 100_000  # draws per target and side
# Tolerances in standard errors. Each statistic's standard error is estimated from the samples
# themselves (the laws clamp, rectify and exponentiate, so no Gaussian formula applies): the mean's
# sqrt(var / N), the std's sqrt((m4 - var^2) / N) / (2 std), both sides' added in quadrature. A
# percentile is compared through the CDF, which needs no density: the fraction of the family's
# draws below aihwkit's q-quantile is q within sqrt(2 q (1 - q) / N) (the two samples' binomial
# errors), and an atom (the clamp at 0 uS) makes that fraction an interval. At 5 standard errors a
# correct law fails with probability ~1e-6 per comparison (~1e-3 over the ~800 here; the seeds are
# fixed, so the outcome is too), while N = 1e5 resolves a 1.6 % error in a std and, at 1 y, a 1 %
# error in the mean conductance: test_a_wrong_coefficient_is_detected shows that margin.
K = 5.0


def make(model: str, **sections) -> DeviceProfile:
    return profile_from_dict({"name": model, "description": "d", "source": "s", "model": model,
                              **sections})


CASES = {
    "pcm": load_profile("pcm"),
    "pcm-g50": make("pcm", conductance={"g_max": 50.0}, programming={"coeffs_g_ref": 25.0}),
    "pcm-table": make("pcm", drift={"table": {"g": [0.0, 5.0, 25.0], "nu_mean": [0.09, 0.06, 0.04],
                                              "nu_std": [0.04, 0.02, 0.01]}}),
    "state-independent": make("state-independent", programming={"coeffs": [0.2, 0.3, -0.1]}),
    "reram": load_profile("reram"),
    "reram-g20": make("reram-wan2022", conductance={"g_max": 20.0}),
    "fefet": load_profile("fefet"),
    "gaussian": load_profile("gaussian"),
    "gaussian-relative": make("gaussian", programming={"sigma": 0.05, "relative": True}),
    "ideal": load_profile("ideal"),
}


def times_of(family: DeviceFamily) -> tuple[float, ...]:
    return family.allowed_times or TIMES


def targets_of(family: DeviceFamily) -> torch.Tensor:
    """[levels, N]: a tile of normalised weights in [-1, 1], or conductances from 0 to g_max."""
    levels = torch.tensor(LEVELS)
    values = torch.cat([-levels.flip(0), levels[1:]]) if family.weight_level else levels * family.g_max
    return values[:, None].expand(-1, N).contiguous()


def family_states(family: DeviceFamily, g: torch.Tensor, seed: int) -> dict[object, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)

    def z() -> torch.Tensor:
        return torch.randn(g.shape, generator=generator)

    prog = family.program(g, z())
    coeffs = family.drift_coefficients(g, z())
    states: dict[object, torch.Tensor] = {"programmed": prog}
    for t in times_of(family):
        states[t] = family.drift(prog, coeffs, t, z() if family.drift_noise else None)
    return states


def aihwkit_states(family: DeviceFamily, g: torch.Tensor, seed: int) -> dict[object, torch.Tensor]:
    model = family.aihwkit_model()
    torch.manual_seed(seed)  # aihwkit draws from torch's global generator
    if family.weight_level:
        prog, params = model.apply_programming_noise(g.clone())
        drift = lambda t: model.apply_drift_noise(prog, params, t)  # noqa: E731
    else:
        prog = model.apply_programming_noise_to_conductance(g.clone())
        coeffs = model.generate_drift_coefficients(g.clone())
        drift = lambda t: model.apply_drift_noise_to_conductance(prog, coeffs, t)  # noqa: E731
    return {"programmed": prog, **{t: drift(t) for t in times_of(family)}}


def std_error_of_std(x: torch.Tensor) -> torch.Tensor:
    """Per row: sqrt((m4 - var^2) / N) / (2 std), the standard error of the sample std."""
    var = x.var(dim=1)
    m4 = (x - x.mean(dim=1, keepdim=True)).pow(4).mean(dim=1)
    return torch.where(var > 0, ((m4 - var**2).clamp(min=0) / N).sqrt() / (2 * var.sqrt()), 0.0)


def disagreements(ours: torch.Tensor, theirs: torch.Tensor, label: str) -> list[str]:
    """The statistics (one row per target) that differ by more than K standard errors."""
    a, b = ours, theirs
    atol = 1e-5 * (1.0 + b.abs().mean(dim=1))  # float32 rounding of the draws
    out = []
    mean_gap = (a.mean(dim=1) - b.mean(dim=1)).abs()
    mean_tol = K * ((a.var(dim=1) + b.var(dim=1)) / N).sqrt() + atol
    out += [f"{label} row {i}: mean off by {mean_gap[i]:.4g}" for i in (mean_gap > mean_tol).nonzero()[:, 0]]
    std_gap = (a.std(dim=1) - b.std(dim=1)).abs()
    std_tol = K * (std_error_of_std(a) ** 2 + std_error_of_std(b) ** 2).sqrt() + atol
    out += [f"{label} row {i}: std off by {std_gap[i]:.4g}" for i in (std_gap > std_tol).nonzero()[:, 0]]
    ranked = theirs.sort(dim=1).values
    for q in (0.05, 0.95):
        x = ranked[:, round(q * (N - 1)), None]
        below = (a < x - atol[:, None]).float().mean(dim=1)
        at_most = (a <= x + atol[:, None]).float().mean(dim=1)
        tol = K * (2 * q * (1 - q) / N) ** 0.5
        bad = (below - tol > q) | (at_most + tol < q)
        out += [f"{label} row {i}: {below[i]:.4f}..{at_most[i]:.4f} below the {q:g}-quantile"
                for i in bad.nonzero()[:, 0]]
    return out


def compare(family: DeviceFamily, reference: DeviceFamily) -> list[str]:
    """``family``'s states against ``reference``'s aihwkit model's, at every target and time."""
    g = targets_of(family)
    ours, theirs = family_states(family, g, seed=1), aihwkit_states(reference, g, seed=2)
    return [msg for key in ours for msg in disagreements(ours[key], theirs[key], f"t={key}")]


@pytest.mark.parametrize("name", CASES)
def test_family_matches_its_aihwkit_model_in_distribution(name):
    """pcm, state-independent and reram against aihwkit's own models; fefet, gaussian and ideal
    (imc-sim's laws) against their aihwkit adapter, which must feed them the same way."""
    family = build_family(CASES[name])
    assert compare(family, family) == []


@pytest.mark.parametrize("name, field, factor", [
    ("pcm", "prog_scale", 1.04),  # every programming coefficient 4 % off
    ("pcm", "coeffs_g_ref", 0.96),
    ("pcm", "drift_scale", 1.05),  # the nu fit 5 % off
    ("pcm", "read_scale", 1.1),  # the 1/f amplitude 0.0088 10 % off
    ("pcm-table", "drift_scale", 1.05),
    ("state-independent", "nu_mean", 1.05),
    ("reram", "scale", 1.04),
    ("fefet", "relax_per_decade", 1.1),
])
def test_a_wrong_coefficient_is_detected(name, field, factor):
    family = build_family(CASES[name])
    value = getattr(family.params, field) * factor
    wrong = type(family)(dataclasses.replace(family.params, **{field: value}))
    assert compare(wrong, family) != []


@pytest.mark.parametrize("name", CASES)
def test_same_generator_seed_same_draws(name):
    family = build_family(CASES[name])
    g = targets_of(family)[:, :64]
    kept = g.clone()
    first, again, other = (family_states(family, g, seed) for seed in (5, 5, 6))
    assert torch.equal(g, kept)  # the laws leave their inputs alone
    assert all(torch.equal(first[k], again[k]) for k in first)
    noisy = name != "ideal"
    assert noisy == (not torch.equal(first["programmed"], other["programmed"]))


@pytest.mark.parametrize("name", CASES)
def test_family_runs_on_any_device(name):
    """Every law on fake cuda tensors: an operation mixing devices would raise."""
    family = build_family(CASES[name])
    with FakeTensorMode(allow_non_fake_inputs=False):
        g = torch.rand(3, 4, 8, device="cuda") * family.g_max
        prog = family.program(g, torch.randn(3, 4, 8, device="cuda"))
        coeffs = family.drift_coefficients(g, torch.randn(3, 4, 8, device="cuda"))
        z = torch.randn(3, 4, 8, device="cuda") if family.drift_noise else None
        states = [prog, *(family.drift(prog, coeffs, t, z) for t in times_of(family))]
        variance = family.read_variance(torch.rand(3, 4, 8, device="cuda"))
    assert all(s.device.type == "cuda" and s.shape == g.shape for s in states)
    assert coeffs is None or coeffs.device.type == "cuda"
    assert variance is None or variance.device.type == "cuda"


@pytest.mark.parametrize("name", CASES)
def test_drift_is_the_identity_at_zero_where_aihwkits_is(name):
    family = build_family(CASES[name])
    if 0.0 not in times_of(family):
        with pytest.raises(ImcSimError, match="only characterised at 1s, 1d, 2d; got 0s"):
            family.drift(torch.ones(3), torch.ones(3), 0.0, torch.zeros(3))
        return
    g = targets_of(family)[:, :256]
    theirs = aihwkit_states(family, g, seed=0)
    ours = family_states(family, g, seed=0)
    if torch.allclose(theirs[0.0], theirs["programmed"], rtol=1e-6, atol=1e-6):
        torch.testing.assert_close(ours[0.0], ours["programmed"], rtol=1e-6, atol=1e-6)
    else:  # pcm and state-independent: the 1/f read noise accumulated during t0 is there at t = 0
        assert family.model in ("pcm", "state-independent")
        assert not torch.equal(ours[0.0], ours["programmed"])


def test_read_variance_is_fefets_pair_noise_and_pcms_pcm_read_only():
    for name, profile in CASES.items():
        if name not in ("fefet", "pcm"):  # the other cases leave read_noise.per_read at 0
            assert build_family(profile).read_variance(torch.rand(4)) is None
    fefet = build_family(CASES["fefet"])
    p = fefet.params
    r = p.g_min / (p.g_max - p.g_min)
    u = torch.tensor([-1.0, 0.0, 0.5])
    expected = p.read_relative**2 * ((u.abs() + r) ** 2 + r**2)
    torch.testing.assert_close(fefet.read_variance(u), expected)
    # the shipped pcm: aihwkit's PCM_READ weight noise of StandardHWATrainingPreset, 0.0175^2 |u|
    torch.testing.assert_close(build_family(CASES["pcm"]).read_variance(u), 0.0175**2 * u.abs())


def test_relative_gaussian_noise_scales_with_each_tiles_largest_weight():
    family = build_family(CASES["gaussian-relative"])
    u = torch.tensor([[[0.5, -2.0]], [[0.25, 0.1]]])  # two tiles of one row
    noise = family.program(u, torch.ones_like(u)) - u
    torch.testing.assert_close(noise, torch.tensor([[[0.1, 0.1]], [[0.0125, 0.0125]]]))


def test_every_shipped_profile_builds_its_family_and_aihwkit_model():
    assert set(FAMILIES) == {"pcm", "state-independent", "reram-wan2022", "fefet", "gaussian", "ideal"}
    for name in shipped_profiles():
        profile = load_profile(name)
        family = build_family(profile)
        assert isinstance(family, FAMILIES[profile.model]) and family.model == profile.model
        assert family.g_max > family.g_min >= 0.0
        assert profile.drifts == family.drifts and build_noise_model(profile) is not None
    for cls in FAMILIES.values():
        assert set(cls.schema) == set(SECTIONS)


def test_a_drift_table_must_span_the_conductances():
    with pytest.raises(ImcSimError, match=r"drift.table.g = \[5.0, 25.0\] must span the conductances 0"):
        make("pcm", drift={"table": {"g": [5.0, 25.0], "nu_mean": [0.05, 0.05], "nu_std": [0.01, 0.01]}})


def test_tables_and_portraits_use_their_own_generator():
    state = torch.get_rng_state()
    pcm = load_profile("pcm")
    a = MomentTables.measure(pcm, [YEAR], seed=3)
    b = MomentTables.measure(pcm, [YEAR], seed=3)
    sigma = programming_sigma(pcm, points=3, samples=1000, seed=3)
    curves = drift_curves(pcm, [1.0, YEAR], samples=1000, seed=3)
    assert torch.equal(torch.get_rng_state(), state)  # torch's global generator untouched
    assert torch.equal(a.mean, b.mean) and torch.equal(a.std, b.std)
    assert sigma == programming_sigma(pcm, points=3, samples=1000, seed=3)
    assert curves == drift_curves(pcm, [1.0, YEAR], samples=1000, seed=3)
    assert curves["levels"]["1"][1] < curves["levels"]["1"][0] < 1.0
