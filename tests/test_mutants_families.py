"""Device-family values mutation testing found unchecked (docs/mutation.md): FeFET's relaxation
target, domain law beyond the window, drift in closed form and its clip; the aihwkit models built
with every parameter of a state-independent and a ReRAM family; ReRAM's draw at z = +1; and a PCM
drift table with a step, against numpy.interp."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from imc_sim.crossbar.periphery import read_noise
from imc_sim.devices import build_family
from imc_sim.devices.families import pcm
from imc_sim.devices.families.pcm import DriftTable, power_law_drift
from imc_sim.devices.families.reram import WAN2022_COEFFS, WAN2022_G_REF, ReRAM, ReRAMParams
from imc_sim.devices.families.state_independent import StateIndependent, StateIndependentParams
from imc_sim.devices.family import ReadNoise
from imc_sim.devices.moments import GRID, MomentTables
from imc_sim.devices.profile import load_profile
from imc_sim.devices.quantiles import QuantileTables, _extended, normal_scores


def fefet(**drift):
    profile = load_profile("fefet")
    return build_family(dataclasses.replace(profile, drift={**profile.drift, **drift}))


def test_fefet_relaxes_to_its_g_relax_or_mid_window():
    assert fefet().params.g_relax == (10.0 + 0.5) / 2
    assert fefet(g_relax=3.0).params.g_relax == 3.0


def test_fefet_programming_sigma_beyond_the_window_is_the_floor():
    family = fefet()
    p = family.params
    g = torch.tensor([p.g_min - 1.0, p.g_min, (p.g_min + p.g_max) / 2, p.g_max, p.g_max + 1.0])
    floor = p.prog_scale * p.sigma_floor  # p = 0 or 1: no domain variance
    mid = p.prog_scale * ((p.g_max - p.g_min) * math.sqrt(0.25 / p.n_domains) + p.sigma_floor)
    torch.testing.assert_close(family.programming_sigma(g), torch.tensor([floor, floor, mid, floor, floor]))


def test_fefet_drift_closed_form():
    """r = relax_per_decade scale_d max(0, 1 + spread z); g_t = g_relax + (g_p - g_relax)(1 - L),
    L = min(1, r log10(1 + t / t0))."""
    family = fefet(t0=10.0, scale=2.0)
    p = family.params
    z = torch.tensor([0.0, 1.0, -10.0])
    r = family.drift_coefficients(torch.full((3,), 5.0), z)
    torch.testing.assert_close(r, torch.tensor([0.02, 0.02 * (1 + p.relax_spread), 0.0]))
    g_prog = torch.tensor([9.0, 1.0, 7.0])
    t = 1e4
    lost = (r * math.log10(1 + t / 10.0)).clamp(max=1.0)
    torch.testing.assert_close(family.drift(g_prog, r, t, None),
                               p.g_relax + (g_prog - p.g_relax) * (1 - lost))


@pytest.mark.parametrize("g_relax, bound", [(0.0, 0.5), (20.0, 10.0)])
def test_fefet_drift_towards_a_target_outside_the_window_stops_at_its_edge(g_relax, bound):
    family = fefet(g_relax=g_relax)
    g_t = family.drift(torch.tensor([5.0, 9.0]), torch.tensor([1.0, 1.0]), 1e6, None)  # L = 1
    assert g_t.tolist() == [bound, bound]


def test_fefet_without_read_noise_has_no_read_variance():
    profile = load_profile("fefet")
    quiet = build_family(dataclasses.replace(profile, read_noise={**profile.read_noise, "relative": 0.0}))
    assert quiet.read_variance(torch.rand(4, 4)) is None
    p = build_family(profile).params
    r = p.g_min / (p.g_max - p.g_min)
    u = torch.tensor([0.0, -0.5, 1.0])
    torch.testing.assert_close(build_family(profile).read_variance(u),
                               p.read_relative**2 * ((u.abs() + r) ** 2 + r**2))


def test_state_independent_aihwkit_model_carries_every_parameter():
    params = StateIndependentParams(g_max=30.0, coeffs=(0.3, 0.1, 0.05), prog_scale=1.5, nu_mean=0.2,
                                    nu_std=0.07, drift_scale=1.3, t0=15.0, t_read=1e-6, read_scale=0.8)
    model = StateIndependent(params).aihwkit_model()
    assert (model.g_max, model.prog_coeff, model.prog_noise_scale) == (30.0, [0.3, 0.1, 0.05], 1.5)
    assert (model.drift_nu_mean, model.drift_nu_std, model.drift_scale, model.t_0) == (0.2, 0.07, 1.3, 15.0)
    assert (model.read_noise_scale, model.t_read) == (0.8, 1e-6)


def test_reram_aihwkit_model_and_draw_carry_the_noise_scale():
    family = ReRAM(ReRAMParams(g_max=30.0, scale=1.7))
    model = family.aihwkit_model()
    assert (model.g_max, model.noise_scale, model.coeff_g_max_reference) == (30.0, 1.7, WAN2022_G_REF)
    g = torch.tensor([0.0, 10.0, 30.0])
    x = g / 30.0
    t = min(WAN2022_COEFFS)
    sigma = sum(c * x**i for i, c in enumerate(WAN2022_COEFFS[t])) * (30.0 / WAN2022_G_REF)
    torch.testing.assert_close(family.program(g, torch.ones(3)), (g + 1.7 * sigma).clamp(min=0.0))


def test_drift_table_with_a_step_interpolates_as_numpy():
    """A repeated conductance is a step: numpy.interp (aihwkit's) takes the upper value on it."""
    table = DriftTable(g=(0.0, 5.0, 5.0, 10.0), nu_mean=(0.05, 0.06, 0.09, 0.1),
                       nu_std=(0.01, 0.02, 0.03, 0.03))
    g = torch.tensor([-1.0, 0.0, 2.5, 4.999, 5.0, 5.001, 7.5, 10.0, 12.0], dtype=torch.float64)
    mean, std = table.interpolate(g)
    torch.testing.assert_close(mean, torch.from_numpy(np.interp(g.numpy(), table.g, table.nu_mean)))
    torch.testing.assert_close(std, torch.from_numpy(np.interp(g.numpy(), table.g, table.nu_std)))


@pytest.mark.parametrize("g", [(0.0, 0.0, 5.0, 10.0), (0.0, 5.0, 10.0, 10.0),
                               (0.0, 0.0, 5.0, 5.0, 10.0, 10.0)])
def test_drift_table_with_steps_at_its_ends_interpolates_as_numpy(g):
    """Repeated first or last conductances: below the table its first value, on and beyond its
    end its last (numpy.interp), in torch and in the compiled pass's lines alike."""
    values = tuple(0.05 + 0.01 * k for k in range(len(g)))
    table = DriftTable(g=g, nu_mean=values, nu_std=values[::-1])
    x = torch.tensor([-1.0, 0.0, 2.5, 5.0, 7.5, 10.0, 12.0], dtype=torch.float64)
    mean, std = table.interpolate(x)
    torch.testing.assert_close(mean, torch.from_numpy(np.interp(x.numpy(), g, values)))
    torch.testing.assert_close(std, torch.from_numpy(np.interp(x.numpy(), g, values[::-1])))


@pytest.mark.parametrize("g", [(0.0, 5.0, 5.0, 10.0), (0.0, 0.2246, 0.3105, 3.0429, 3.0429, 3.1454, 10.35),
                               tuple(float(v) for v in range(40))])
def test_drift_table_segments_counted_are_the_binary_search(monkeypatch, g):
    """Counting the inner points at or below a conductance finds numpy's segment (the last whose
    start is <= it; on a step the upper one) as the binary search does, on and between the points."""
    table = DriftTable(g=g, nu_mean=g, nu_std=g)
    points = torch.tensor(g)
    x = torch.cat([points, points + 1e-4, points - 1e-4, torch.rand(2000) * (g[-1] + 2.0) - 1.0])
    counted = table.segments(x)
    monkeypatch.setattr(pcm, "COUNTED_POINTS", 0)
    searched = table.segments(x)
    assert counted.dtype == searched.dtype == torch.int64
    assert torch.equal(counted, searched)
    assert counted.min() == 0 and counted.max() == len(g) - 2
    numpy_segment = np.searchsorted(np.float32(g), x.numpy(), side="right") - 1
    assert torch.equal(counted, torch.from_numpy(numpy_segment).clamp(0, len(g) - 2))


def test_power_law_drift_is_the_power_law_and_none_at_zero():
    g, nu = torch.tensor([1.0, 2.0, 8.0]), torch.tensor([0.0, 0.05, 0.1])
    torch.testing.assert_close(power_law_drift(g, nu, 86400.0, 20.0), g * ((86400.0 + 20.0) / 20.0) ** (-nu))
    assert power_law_drift(g, nu, 0.0, 20.0) is g


def test_read_noise_scaled_multiplies_every_coefficient():
    assert ReadNoise(1.0, 2.0, 3.0).scaled(0.5) == ReadNoise(0.5, 1.0, 1.5)
    two_pairs = read_noise(build_family(load_profile("pcm")), 0.0, devices=2)
    assert two_pairs == ReadNoise(c1=0.0175**2 / 2)  # the mean of two pairs' reads


def test_families_compare_by_type_and_parameters_and_show_them():
    pcm, chip = build_family(load_profile("pcm")), build_family(load_profile("pcm-chip"))
    assert pcm == build_family(load_profile("pcm")) and pcm != chip
    assert pcm != build_family(load_profile("reram"))
    assert repr(pcm) == f"PCM(params={pcm.params!r}, g_max=25.0)"


def test_moment_tables_look_up_the_time_row_and_hold_the_edges():
    """Row k of three drift times, exactly at the grid's targets; beyond [-1, 1] the edge values."""
    mean = torch.arange(3 * GRID, dtype=torch.float32).view(3, GRID)
    tables = MomentTables([1.0, 2.0, 3.0], mean, mean + 0.5)
    u = torch.linspace(-1.0, 1.0, GRID)
    for k in range(3):
        got_mean, got_std = tables.lookup(u, k)
        torch.testing.assert_close(got_mean, mean[k])
        torch.testing.assert_close(got_std, mean[k] + 0.5)
    beyond, _ = tables.lookup(torch.tensor([-1.5, 1.5]), 1)
    torch.testing.assert_close(beyond, mean[1, [0, -1]])


def test_tables_of_a_weight_level_family_say_so_and_move_whole():
    gaussian = load_profile("gaussian")
    moments = MomentTables.measure(gaussian, [1.0, 60.0])
    assert moments.weight_level is True
    quantiles = QuantileTables.measure(gaussian, [1.0, 60.0])
    moved = quantiles.to("cpu")
    assert moved.weight_level is True and moved.times == [1.0, 60.0]
    assert torch.equal(moved.values, quantiles.values)



def test_moment_tables_measured_on_the_cpu_look_up_on_the_targets_device():
    """sigma_target auto measures its tables on the CPU and looks up the model's weights wherever
    they are (here torch's meta device: fake CUDA cannot run grid_sample on this CPU build)."""
    tables = MomentTables.measure(load_profile("pcm"), [86400.0])
    mean, std = tables.lookup(torch.rand(7, device="meta"), 0)
    assert mean.device.type == std.device.type == "meta" and mean.shape == (7,)


def test_quantile_levels_and_their_extension_stay_on_the_tables_device():
    """Torch's meta device stands in for a GPU (fake CUDA cannot slice on this CPU build)."""
    assert normal_scores("meta").device.type == "meta"
    assert _extended(torch.rand(3, 5, device="meta")).device.type == "meta"


@pytest.mark.parametrize("name", ["gaussian", "pcm"])
def test_tables_draw_from_their_own_generator_only(name):
    """Measuring tables (a weight-level and a pair family) leaves torch's global generator as it
    was, and the same seed gives the same tables."""
    torch.manual_seed(0)
    before = torch.get_rng_state()
    first = MomentTables.measure(load_profile(name), [86400.0], seed=2)
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(1)
    assert torch.equal(MomentTables.measure(load_profile(name), [86400.0], seed=2).std, first.std)


def test_read_noise_is_one_pairs_by_default_and_a_constant_without_a_device_law():
    pcm = build_family(load_profile("pcm"))
    assert read_noise(pcm, 0.0) == ReadNoise(c1=0.0175**2)
    gaussian = build_family(load_profile("gaussian"))  # no per-read device law
    assert gaussian.read_noise() is None
    assert read_noise(gaussian, 0.01, devices=2) == ReadNoise(c0=0.01**2)
    assert read_noise(gaussian, 0.0, devices=2) is None
