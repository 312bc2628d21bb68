"""Property-based tests of the device physics and the crossbar (hypothesis, seeded: conftest.py).

Drawn: layer shapes whose widths do not divide by the tile size, weights whose output columns
span up to four decades of scale, inputs that drive the DAC and the ADC into saturation, every
device family at several drift times. Checked against closed forms (drift laws with z = 0,
compensation gain, DAC quantisation and clipping, ADC saturation at out_bound, the pair conversion
round trip, the ideal profile and the perfect periphery) and, for a few drawn cases, against
aihwkit's own tile.
"""

from __future__ import annotations

import dataclasses
import math
from unittest import mock

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_periphery import aihwkit_layer

from imc_sim.crossbar import epilogue, int8_product
from imc_sim.crossbar.conductance import ZERO_CLIP, from_pair, pair_ratio, to_pair
from imc_sim.crossbar.periphery import Converters, dac
from imc_sim.crossbar.streams import ChipStreams
from imc_sim.crossbar.tiles import CrossbarLinear
from imc_sim.devices import build_family
from imc_sim.devices.families import FAMILIES
from imc_sim.devices.profile import DeviceProfile, Periphery, load_profile, profile_from_dict
from imc_sim.errors import ImcSimError

TIMES = [0.0, 1.0, 60.0, 3600.0, 86400.0, 2592000.0, 31536000.0, 315360000.0]
RERAM_TIMES = [1.0, 86400.0, 172800.0]
seeds = st.integers(0, 2**31 - 1)
times = st.sampled_from(TIMES)
positive_times = st.sampled_from(TIMES[1:])


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@st.composite
def layer_shapes(draw) -> tuple[int, int, int, int]:
    """(in, out, tile_rows, tile_cols): widths mostly NOT multiples of the tile size."""
    tile_rows, tile_cols = draw(st.integers(2, 16)), draw(st.integers(2, 16))
    return draw(st.integers(1, 40)), draw(st.integers(1, 24)), tile_rows, tile_cols


def spread_linear(in_features: int, out_features: int, seed: int, decades: float) -> torch.nn.Linear:
    """A Linear whose output columns have scales 10^U(-decades, 0) x 10 (very different)."""
    g = gen(seed)
    linear = torch.nn.Linear(in_features, out_features)
    with torch.no_grad():
        scales = 10 ** (1 - decades * torch.rand(out_features, 1, generator=g))
        linear.weight.copy_(torch.randn(out_features, in_features, generator=g) * scales)
        linear.bias.copy_(torch.randn(out_features, generator=g))
    return linear


def with_periphery(profile: DeviceProfile, **fields) -> DeviceProfile:
    return dataclasses.replace(profile, periphery=dataclasses.replace(profile.periphery, **fields))


def state_independent_profile() -> DeviceProfile:
    """No profile ships for the state-independent family: one with its schema defaults."""
    return profile_from_dict({"name": "si", "description": "d", "source": "s",
                              "model": "state-independent", "compensation": "global"})


PROFILES = {"pcm": load_profile("pcm"), "reram-wan2022": load_profile("reram"),
            "fefet": load_profile("fefet"), "gaussian": load_profile("gaussian"),
            "ideal": load_profile("ideal"), "state-independent": state_independent_profile()}


def without_per_read(profile: DeviceProfile) -> DeviceProfile:
    """``profile`` with its per-read (cycle-to-cycle) weight noise off, where it has one (pcm's
    ``per_read``, fefet's ``relative``): aihwkit's torch tile and the closed forms have none."""
    off = {key: 0.0 for key in ("per_read", "relative") if key in profile.read_noise}
    return dataclasses.replace(profile, read_noise={**profile.read_noise, **off}) if off else profile


def test_every_family_is_covered():
    assert set(PROFILES) == set(FAMILIES)
    assert all(PROFILES[name].model == name for name in PROFILES)


# --- conductance pairs ------------------------------------------------------------------------


@given(seed=seeds, lead=st.integers(1, 3), cols=st.integers(1, 9), rows=st.integers(1, 9),
       g_max=st.floats(1.0, 100.0), g_min_frac=st.floats(0.0, 0.5), zero=st.booleans())
def test_pair_round_trip(seed, lead, cols, rows, g_max, g_min_frac, zero):
    u = torch.randn(lead, cols, rows, generator=gen(seed), dtype=torch.float64)
    u = u * 10 ** torch.empty(lead, 1, 1, dtype=torch.float64).uniform_(-3, 1, generator=gen(seed + 1))
    if zero:
        u[0] = 0.0  # an all-zero tile: aihwkit's floor on max |u|
    g_min = g_min_frac * g_max
    ratio = pair_ratio(u, g_max, g_min)
    abs_max = u.abs().amax(dim=(-2, -1), keepdim=True)
    torch.testing.assert_close(ratio, (g_max - g_min) / abs_max.clamp(min=ZERO_CLIP))
    g = to_pair(u, ratio, g_max, g_min)
    assert g.shape == (lead, 2, cols, rows)
    assert (g >= g_min).all() and (g <= g_max * (1 + 1e-12)).all()
    assert ((g[:, 0] == g_min) | (g[:, 1] == g_min)).all()  # one device of each pair at g_min
    assert torch.equal(g[:, 0] > g_min, u > 0) and torch.equal(g[:, 1] > g_min, u < 0)
    # the largest |u| of each non-zero tile sits at g_max
    top = torch.maximum(g[:, 0], g[:, 1]).amax(dim=(-2, -1))
    nonzero = abs_max.view(-1) > 0
    torch.testing.assert_close(top[nonzero], torch.full_like(top[nonzero], g_max))
    torch.testing.assert_close(from_pair(g, ratio, g_min), u, rtol=1e-12, atol=1e-15)


# --- device laws: closed forms with z = 0 -----------------------------------------------------


def targets(seed: int, g_max: float, g_min: float = 0.0, n: int = 64) -> torch.Tensor:
    g = g_min + (g_max - g_min) * torch.rand(n, generator=gen(seed), dtype=torch.float64)
    g[0], g[1] = g_min, g_max
    return g


def power_law(g: torch.Tensor, nu: torch.Tensor, t: float, t0: float) -> torch.Tensor:
    return g * ((t + t0) / t0) ** (-nu) if t > 0 else g


@given(seed=seeds, t=times, scale=st.floats(0.0, 3.0), t_read=st.sampled_from([2.5e-7, 0.5, 5.0]))
def test_pcm_closed_forms(seed, t, scale, t_read):
    profile = PROFILES["pcm"]
    profile = dataclasses.replace(profile, drift={**profile.drift, "scale": scale},
                                  read_noise={**profile.read_noise, "t_read": t_read})
    family = build_family(profile)
    p = family.params
    g = targets(seed, p.g_max)
    zero = torch.zeros_like(g)
    assert torch.equal(family.program(g, zero), g)
    # z = +1: g + scale_p sigma_p(x), sigma_p the polynomial rescaled by g_max / coeffs_g_ref
    x = g / p.g_max
    sigma_p = sum(c * x**i for i, c in enumerate(p.coeffs)) * (p.g_max / p.coeffs_g_ref)
    torch.testing.assert_close(family.program(g, zero + 1), (g + p.prog_scale * sigma_p).clamp(min=0))
    # nu fit: drift_scale * |mu(x) + s(x) z|, x = g / g_max >= 1e-7
    x = x.clamp(min=1e-7)
    mu = (-0.0155 * torch.log(x) + 0.0244).clamp(0.049, 0.1)
    s = (-0.0125 * torch.log(x) - 0.0059).clamp(0.008, 0.045)
    torch.testing.assert_close(family.drift_coefficients(g, zero), scale * mu)
    torch.testing.assert_close(family.drift_coefficients(g, zero + 1), scale * (mu + s))
    # drift law: g(t) = g_prog ((t + t0) / t0)^-nu with zero read noise
    nu = torch.rand(g.shape, generator=gen(seed + 1), dtype=torch.float64) * 0.2
    torch.testing.assert_close(family.drift(g, nu, t, zero), power_law(g, nu, t, p.t0))
    # accumulated 1/f read noise: linear in z with std |g_d| q sqrt(ln((t + t0 + t_read) / 2 t_read))
    q = (0.0088 / ((g / p.g_max) ** 0.65).clamp(min=1e-3)).clamp(max=0.2)
    sigma = q * p.read_scale * math.sqrt(math.log((t + p.t0 + p.t_read) / (2 * p.t_read)))
    one = torch.ones_like(g)
    g_d = power_law(g, nu, t, p.t0)
    torch.testing.assert_close(family.drift(g, nu, t, one), g_d + g_d.abs() * sigma)
    assert (family.drift(g, nu, t, -100 * one) == 0).all()  # clipped at 0 uS


@given(seed=seeds, t=times, nu_mean=st.floats(0.0, 0.5), drift_scale=st.floats(0.0, 2.0))
def test_state_independent_closed_forms(seed, t, nu_mean, drift_scale):
    profile = PROFILES["state-independent"]
    profile = dataclasses.replace(profile, drift={**profile.drift, "nu_mean": nu_mean, "scale": drift_scale})
    family = build_family(profile)
    p = family.params
    g = targets(seed, p.g_max)
    zero = torch.zeros_like(g)
    assert torch.equal(family.program(g, zero), g)
    torch.testing.assert_close(family.drift_coefficients(g, zero), torch.full_like(g, drift_scale * nu_mean))
    torch.testing.assert_close(family.drift_coefficients(g, -zero - 1),
                               torch.full_like(g, drift_scale * abs(nu_mean - p.nu_std)))
    nu = torch.rand(g.shape, generator=gen(seed + 1), dtype=torch.float64) * 0.2
    torch.testing.assert_close(family.drift(g, nu, t, zero), power_law(g, nu, t, p.t0))
    sigma = p.read_scale * math.sqrt(math.log((t + p.t0 + p.t_read) / (2 * p.t_read)))
    g_d = power_law(g, nu, t, p.t0)
    torch.testing.assert_close(family.drift(g, nu, t, zero + 1), g_d + (g_d / p.g_max).abs() * sigma)
    # programming noise: the polynomial in g / g_max, in uS (no reference rescaling)
    x = g / p.g_max
    poly = sum(c * x**i for i, c in enumerate(p.coeffs))
    torch.testing.assert_close(family.program(g, zero + 1), (g + p.prog_scale * poly).clamp(min=0))


@given(seed=seeds, t=times, relax=st.floats(0.0, 0.5), spread=st.floats(0.0, 1.0))
def test_fefet_closed_forms(seed, t, relax, spread):
    profile = PROFILES["fefet"]
    profile = dataclasses.replace(profile, drift={**profile.drift, "relax_per_decade": relax,
                                                  "relax_spread": spread})
    family = build_family(profile)
    p = family.params
    g = targets(seed, p.g_max, p.g_min)
    zero = torch.zeros_like(g)
    assert torch.equal(family.program(g, zero), g)
    frac = (g - p.g_min) / (p.g_max - p.g_min)
    sigma = p.prog_scale * ((p.g_max - p.g_min) * torch.sqrt(frac * (1 - frac) / p.n_domains) + p.sigma_floor)
    torch.testing.assert_close(family.program(g, zero + 1), (g + sigma).clamp(p.g_min, p.g_max))
    r = family.drift_coefficients(g, zero - 1)
    torch.testing.assert_close(r, torch.full_like(g, relax * p.drift_scale * max(0.0, 1 - spread)))
    lost = min(1.0, relax * p.drift_scale * math.log10(1 + t / p.t0))
    torch.testing.assert_close(family.drift(g, family.drift_coefficients(g, zero), t, None),
                               (p.g_relax + (g - p.g_relax) * (1 - lost)).clamp(p.g_min, p.g_max))
    # read variance of a pair: relative^2 ((|u| + r)^2 + r^2), r = g_min / span
    u = torch.linspace(-1, 1, 11, dtype=torch.float64)
    rr = p.g_min / (p.g_max - p.g_min)
    torch.testing.assert_close(family.read_variance(u), p.read_relative**2 * ((u.abs() + rr) ** 2 + rr**2))


@given(seed=seeds, t=st.sampled_from(RERAM_TIMES), bad_t=st.sampled_from([0.0, 60.0, 3600.0, 3e7]))
def test_reram_closed_forms(seed, t, bad_t):
    family = build_family(PROFILES["reram-wan2022"])
    g = targets(seed, family.g_max)
    zero = torch.zeros_like(g)
    assert torch.equal(family.program(g, zero), g)
    coeffs = family.drift_coefficients(g, zero)
    assert torch.equal(family.drift(family.program(g, zero + 1), coeffs, t, zero), g)  # drawn around g
    with pytest.raises(ImcSimError, match="only characterised"):
        family.drift(g, coeffs, bad_t, zero)


@given(seed=seeds, sigma=st.floats(0.0, 0.5), relative=st.booleans())
def test_weight_level_closed_forms(seed, sigma, relative):
    ideal = build_family(PROFILES["ideal"])
    u = torch.randn(3, 4, 5, generator=gen(seed), dtype=torch.float64)
    z = torch.randn(3, 4, 5, generator=gen(seed + 1), dtype=torch.float64)
    assert torch.equal(ideal.program(u, z), u) and not ideal.drifts
    profile = PROFILES["gaussian"]
    profile = dataclasses.replace(profile, programming={"sigma": sigma, "relative": relative})
    family = build_family(profile)
    per_tile = u.abs().amax(dim=(-2, -1), keepdim=True) if relative else 1.0
    torch.testing.assert_close(family.program(u, z), u + sigma * per_tile * z)
    assert torch.equal(family.program(u, torch.zeros_like(z)), u)


# --- the crossbar layer -----------------------------------------------------------------------


@given(shape=layer_shapes(), seed=seeds, t=times, decades=st.floats(0.0, 4.0))
def test_ideal_profile_reproduces_linear_exactly(shape, seed, t, decades):
    in_f, out_f, rows, cols = shape
    linear = spread_linear(in_f, out_f, seed, decades)
    profile = with_periphery(PROFILES["ideal"], tile_rows=rows, tile_cols=cols)
    layer = CrossbarLinear(linear, profile, build_family(profile))
    x = torch.randn(5, 2, in_f, generator=gen(seed + 1)) * 100
    with torch.no_grad():
        assert torch.equal(layer(x), linear(x))
        streams = ChipStreams(seed)
        layer.program(streams, "l")
        layer.drift(t, streams, "l")
        assert torch.equal(layer(x), linear(x))


def uniform_drift_pcm(nu: float, compensation: str, weight_scaling: str, rows: int,
                      cols: int) -> DeviceProfile:
    """PCM without programming or read noise whose every device drifts with the same nu (a flat
    drift table), on a perfect periphery."""
    pcm = without_per_read(PROFILES["pcm"])
    g_max = pcm.conductance["g_max"]
    return dataclasses.replace(
        pcm, programming={**pcm.programming, "scale": 0.0}, read_noise={**pcm.read_noise, "scale": 0.0},
        drift={**pcm.drift, "table": {"g": [0.0, g_max], "nu_mean": [nu, nu], "nu_std": [0.0, 0.0]}},
        compensation=compensation,
        periphery=Periphery(tile_rows=rows, tile_cols=cols, dac_bits=None, adc_bits=None,
                            weight_scaling=weight_scaling))


@given(shape=layer_shapes(), seed=seeds, t=times, nu=st.floats(0.0, 0.2), decades=st.floats(0.0, 4.0),
       setup=st.sampled_from([("none", "none"), ("none", "per-tile"), ("none", "per-column"),
                              ("global", "per-tile"), ("global", "per-column"),
                              ("per-column", "per-column")]))
def test_uniform_drift_and_compensation_closed_form(shape, seed, t, nu, decades, setup):
    """Every weight drifts by tau^-nu (tau = (t + t0) / t0): uncompensated, the layer computes
    x (W tau^-nu)^T + b; compensated, the gain is tau^nu and the layer computes x W^T + b."""
    in_f, out_f, rows, cols = shape
    compensation, weight_scaling = setup
    profile = uniform_drift_pcm(nu, compensation, weight_scaling, rows, cols)
    linear = spread_linear(in_f, out_f, seed, decades)
    layer = CrossbarLinear(linear, profile, build_family(profile))
    x = torch.randn(6, in_f, generator=gen(seed + 1), dtype=torch.float64)
    streams = ChipStreams(seed)
    layer.program(streams, "l")
    layer.drift(t, streams, "l")
    factor = ((t + 20.0) / 20.0) ** (-nu) if t > 0 else 1.0
    w, b = linear.weight.detach().double(), linear.bias.detach().double()
    gain = layer.scales.double() / layer.mapping.double()
    if compensation == "none":
        assert torch.equal(gain, torch.ones_like(gain))
        expected = x @ (w * factor).T + b
    else:
        torch.testing.assert_close(gain, torch.full_like(gain, 1 / factor), rtol=1e-5, atol=0)
        expected = x @ w.T + b
    with torch.no_grad():
        got = layer(x.float()).double()
    scale = (x.abs() @ w.abs().T).amax(dim=0) + 1  # per output
    assert ((got - expected).abs() <= 2e-5 * scale).all(), (got - expected).abs().max()


@given(shape=layer_shapes(), seed=seeds, t=times, decades=st.floats(0.0, 4.0),
       name=st.sampled_from(sorted(set(PROFILES) - {"reram-wan2022"}) + ["reram-wan2022"]))
def test_perfect_periphery_computes_the_programmed_product(shape, seed, t, decades, name):
    """Any family, any drift time: with exact converters and no read noise the layer computes x W_t^T + b,
    W_t the tiles' weights at t times their digital scales, cut back to the layer's [out, in]."""
    in_f, out_f, rows, cols = shape
    profile = without_per_read(PROFILES[name])  # per-read noise is a periphery effect: off here
    if name == "reram-wan2022":
        t = RERAM_TIMES[seed % 3]
    scaling = "none" if name == "gaussian" else "per-column"
    profile = dataclasses.replace(profile, periphery=Periphery(
        tile_rows=rows, tile_cols=cols, dac_bits=None, adc_bits=None, weight_scaling=scaling))
    linear = spread_linear(in_f, out_f, seed, decades)
    layer = CrossbarLinear(linear, profile, build_family(profile))
    streams = ChipStreams(seed)
    layer.program(streams, "l")
    layer.drift(t, streams, "l")
    # W_t from the per-tile state [row_tiles, col_tiles, cols, rows], independent of the stack
    tiles = layer.weights.double()  # [row_tiles, out, rows]
    w_t = (tiles * layer.scales.double()[..., None]).permute(1, 0, 2).reshape(out_f, -1)[:, :in_f]
    x = torch.randn(4, in_f, generator=gen(seed + 1), dtype=torch.float64)
    with torch.no_grad():
        got = layer(x.float()).double()
    expected = x @ w_t.T + linear.bias.detach().double()
    scale = (x.abs() @ w_t.abs().T).amax(dim=0) + 1
    assert ((got - expected).abs() <= 1e-5 * scale).all()
    if name not in ("ideal",):  # the device really changed the weights (noise or drift)
        assert not torch.equal(w_t.float(), linear.weight.detach())
    # the padding of ragged tiles holds no device: inputs past in_f, outputs past out_f are 0
    g = layer.grid
    padded = layer.programmed.permute(1, 2, 0, 3).reshape(g.col_tiles * g.cols, g.row_tiles * g.rows)
    assert (padded[:, in_f:] == 0).all() and (padded[out_f:] == 0).all()


# --- converters -------------------------------------------------------------------------------


@given(seed=seeds, n=st.integers(1, 5), row_tiles=st.integers(1, 3), rows=st.integers(1, 12),
       bits=st.integers(2, 10), inp_bound=st.floats(0.25, 4.0), managed=st.booleans(),
       magnitude=st.floats(0.01, 100.0), compiled=st.booleans())
def test_dac_quantisation_and_clipping(seed, n, row_tiles, rows, bits, inp_bound, managed, magnitude,
                                       compiled):
    """codes = clamp(round(x / (s d_in)), +-inp_bound / d_in), d_in = 2 inp_bound / (2^b - 2),
    s = max |x| per input row and row tile (abs-max noise management) or 1."""
    periphery = Periphery(dac_bits=bits, inp_bound=inp_bound,
                          noise_management="abs-max" if managed else "none")
    conv = Converters.from_periphery(periphery)
    d_in = 2 * inp_bound / (2**bits - 2)
    assert conv.d_in == pytest.approx(d_in) and conv.inp_bound == pytest.approx(inp_bound / d_in)
    x = torch.randn(n, row_tiles * rows, generator=gen(seed)) * magnitude
    x[0, :rows] = 0.0  # an all-zero input row tile: scale 1
    with mock.patch.object(epilogue, "use_compiled", compiled and epilogue.AVAILABLE):
        codes, scale = dac(x, row_tiles, conv, as_uint8=False)
    xv = x.double().view(n, row_tiles, rows)
    if managed:
        s = xv.abs().amax(-1, keepdim=True)
        s = torch.where(s > 0, s, torch.ones_like(s))
        torch.testing.assert_close(scale.double(), s)
    else:
        s = torch.ones(n, row_tiles, 1, dtype=torch.float64)
        assert scale is None
    bound = math.floor(inp_bound / d_in + 1e-9)
    expected = torch.round(xv / (s * d_in)).clamp(-bound, bound)
    # a code may differ by one where x / (s d_in) sits within float rounding of a half
    diff = (codes.double().view_as(expected) - expected).abs()
    assert diff.max() <= 1 and (diff > 0).float().mean() <= 0.02
    assert codes.abs().max() <= bound


def reference_mvm(linear: torch.nn.Linear, x: torch.Tensor,
                  p: Periphery) -> tuple[torch.Tensor, torch.Tensor]:
    """The periphery's closed form per row tile in float64, per-column mapping, one column tile:
    x_n = x / s, c = clamp(round(x_n / d_in)) d_in, y = clamp(round(c u^T / d_out), +-out_bound/d_out),
    out += y d_out s m. Returns (output, one ADC step in output units summed over row tiles)."""
    w = linear.weight.detach().double()
    out = linear.bias.detach().double().expand(x.shape[0], -1).clone()
    step_sum = torch.zeros_like(out)
    d_in = 2 * p.inp_bound / (2**p.dac_bits - 2)
    d_out = 2 * p.out_bound / (2**p.adc_bits - 2)
    levels = math.floor(p.out_bound / d_out + 1e-9)
    for r0 in range(0, w.shape[1], p.tile_rows):
        wr, xr = w[:, r0 : r0 + p.tile_rows], x.double()[:, r0 : r0 + p.tile_rows]
        m = wr.abs().amax(1)
        m = torch.where(m > 0, m, torch.ones_like(m))
        if p.noise_management == "abs-max":
            s = xr.abs().amax(1, keepdim=True)
            s = torch.where(s > 0, s, torch.ones_like(s))
        else:
            s = torch.ones(x.shape[0], 1, dtype=torch.float64)
        bound = math.floor(p.inp_bound / d_in + 1e-9)
        c = torch.round(xr / s / d_in).clamp(-bound, bound) * d_in
        y = torch.round(c @ (wr / m[:, None]).T / d_out).clamp(-levels, levels)
        out += y * d_out * s * m
        step_sum += d_out * s * m
    return out, step_sum


@given(seed=seeds, shape=layer_shapes(), dac_bits=st.integers(4, 8), adc_bits=st.integers(4, 9),
       out_bound=st.floats(0.2, 3.0), managed=st.booleans(), magnitude=st.floats(0.1, 50.0),
       decades=st.floats(0.0, 4.0), int8=st.booleans())
def test_adc_saturates_at_out_bound(seed, shape, dac_bits, adc_bits, out_bound, managed, magnitude, decades,
                                    int8):
    """The quiet periphery's outputs against the closed form, with inputs large enough to clip the
    DAC (no noise management) and products past out_bound (the ADC saturates)."""
    in_f, out_f, rows, _ = shape
    periphery = Periphery(tile_rows=rows, tile_cols=512, dac_bits=dac_bits, adc_bits=adc_bits,
                          out_bound=out_bound, noise_management="abs-max" if managed else "none")
    profile = dataclasses.replace(without_per_read(PROFILES["pcm"]), periphery=periphery)
    linear = spread_linear(in_f, out_f, seed, decades)
    x = (torch.rand(16, in_f, generator=gen(seed + 1)) - 0.2) * magnitude  # mostly positive: saturates
    limbs = int8_product.limbs() if int8 else None
    with mock.patch.object(int8_product, "limbs", lambda: limbs), torch.no_grad():
        layer = CrossbarLinear(linear, profile, build_family(profile))
        got = layer(x).double()
    expected, steps = reference_mvm(linear, x, periphery)
    diff = (got - expected).abs()
    tol = 1e-4 * (expected.abs() + steps)
    # ADC rounding may flip by one level where float order differs (rare; one step per row tile)
    assert (diff <= steps + tol).all(), diff.max()
    assert (diff > tol).float().mean() <= 0.05
    # never past the bound: each row tile adds at most out_bound s m
    max_out = steps * (2**adc_bits - 2) / 2
    assert ((got - linear.bias.detach().double()).abs() <= max_out + tol).all()


@settings(max_examples=4)
@given(seed=seeds, in_f=st.integers(3, 40), out_f=st.integers(1, 12), rows=st.integers(3, 16),
       dac_bits=st.integers(5, 8), out_bound=st.floats(0.5, 12.0), managed=st.booleans(),
       scaling=st.sampled_from(["per-column", "per-tile"]), magnitude=st.floats(0.5, 20.0))
def test_quiet_periphery_matches_aihwkit_tile(seed, in_f, out_f, rows, dac_bits, out_bound, managed,
                                              scaling, magnitude):
    """A few drawn cases against aihwkit's TorchInferenceTile (ragged row tiles, spread columns,
    saturating converters)."""
    periphery = Periphery(tile_rows=rows, tile_cols=512, dac_bits=dac_bits, adc_bits=8, out_bound=out_bound,
                          noise_management="abs-max" if managed else "none", weight_scaling=scaling)
    profile = dataclasses.replace(without_per_read(PROFILES["pcm"]), periphery=periphery)
    linear = spread_linear(in_f, out_f, seed, 3.0)
    x = torch.randn(32, in_f, generator=gen(seed + 1)) * magnitude
    with torch.no_grad():
        ours = CrossbarLinear(linear, profile, build_family(profile))(x).double()
        theirs = aihwkit_layer(linear, profile)(x).double()
    w_max = linear.weight.detach().abs().amax(1) if scaling == "per-column" else linear.weight.abs().max()
    x_max = x.abs().amax() if managed else 1.0
    one_step = 2 * out_bound / 254 * x_max * w_max.double()
    n_row_tiles = -(-in_f // rows)
    diff = (ours - theirs).abs()
    assert (diff <= n_row_tiles * one_step + 1e-4 * theirs.abs() + 1e-5).all(), diff.max()
    assert (diff > 1e-4 * theirs.abs() + 1e-5).float().mean() <= 0.05


@given(seed=seeds, over=st.floats(1.5, 10.0), g_min=st.floats(0.0, 2.0))
def test_to_pair_clips_at_g_max(seed, over, g_min):
    """With a ratio past the span (not pair_ratio's), each device still ends in [g_min, g_max + g_min]
    as aihwkit's SinglePairConductanceConverter clamps: the clamp is not dead code for other callers."""
    u = torch.randn(2, 3, 4, generator=gen(seed), dtype=torch.float64)
    g_max = 10.0
    ratio = pair_ratio(u, g_max, 0.0) * over
    g = to_pair(u, ratio, g_max, g_min)
    expected_pos = (u * ratio).clamp(0.0, g_max) + g_min
    expected_neg = (-u * ratio).clamp(0.0, g_max) + g_min
    assert torch.equal(g[:, 0], expected_pos) and torch.equal(g[:, 1], expected_neg)
    assert (g <= g_max + g_min).all() and (g.amax() == g_max + g_min)


def test_thread_pool_survives_fork():
    """A process forked after the periphery's thread pool exists (mutmut, multiprocessing) gets
    its own pool: the parent's threads do not exist in the child, and waiting on them hung."""
    import os

    from imc_sim.threads import run_all

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        run_all([lambda: None] * 4)
        pid = os.fork()
        if pid == 0:  # the child: exit 0 once run_all returns (a hang is killed by the parent)
            run_all([lambda: None] * 4)
            os._exit(0)
        for _ in range(200):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            __import__("time").sleep(0.05)
        else:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("run_all hung in a forked child")
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        torch.set_num_threads(threads)


@given(inner=st.lists(st.floats(0.5, 24.5), min_size=0, max_size=3), start=st.sampled_from([0.0, 0.5, 2.0]),
       end=st.sampled_from([25.0, 30.0, 24.0]))
def test_pcm_drift_table_must_span_zero_to_g_max(inner, start, end):
    """A drift table loads exactly when its conductances run from 0 (or below) to g_max (or above)."""
    import yaml

    from imc_sim.devices.profile import shipped_profiles

    raw = yaml.safe_load(shipped_profiles()["pcm"].read_text())
    g = sorted([start, *inner, end])
    raw["drift"]["table"] = {"g": g, "nu_mean": [0.05] * len(g), "nu_std": [0.01] * len(g)}
    if start <= 0.0 and end >= raw["conductance"]["g_max"]:
        assert profile_from_dict(raw).drift["table"]["g"] == g
    else:
        with pytest.raises(ImcSimError, match="must span the conductances 0 to g_max"):
            profile_from_dict(raw)
