"""The compiled periphery pass (noise, ADC, scales) against its torch fallback, and its noise."""

import numpy as np
import pytest
import torch

from imc_sim.crossbar import epilogue
from imc_sim.crossbar.streams import ChipStreams, Stream

compiled = pytest.mark.skipif(not epilogue.AVAILABLE, reason="the C pass was not built (no compiler)")


def inputs(n=300, m=200):
    gen = torch.Generator().manual_seed(0)
    y = torch.randn(n, m, generator=gen) * 40
    return y, torch.rand(n, generator=gen) + 0.5, torch.rand(m, generator=gen), torch.randn(m, generator=gen)


@pytest.fixture
def fallback(monkeypatch):
    monkeypatch.setattr(epilogue, "use_compiled", False)


def stream(seed: int = 0) -> Stream:
    return ChipStreams(seed).stream("layer", "read", "cpu")


def run(y, rs, cf, base, out, sd=0.0, y_scale=0.5):
    return epilogue.apply(y, y_scale, sd, True, 30.0, rs, cf, base, out, stream())


def test_fallback_rounds_clips_scales_and_adds(fallback):
    y, rs, cf, bias = inputs()
    got = run(y, rs, cf, bias, torch.empty_like(y))
    expected = bias + (0.5 * y).round().clamp(-30, 30) * rs[:, None] * cf
    torch.testing.assert_close(got, expected)
    acc = expected.clone()
    torch.testing.assert_close(run(y, rs, cf, acc, acc), 2 * expected - bias)  # accumulate


@compiled
@pytest.mark.parametrize("base", ["bias", "none", "accumulate"])
def test_compiled_pass_equals_the_fallback_without_noise(base, monkeypatch):
    y, rs, cf, bias = inputs()
    results = []
    for use in (True, False):
        monkeypatch.setattr(epilogue, "use_compiled", use)
        out = bias.expand_as(y).clone() if base == "accumulate" else y.clone()
        chosen = {"bias": bias, "none": None, "accumulate": out}[base]
        results.append(run(y.clone(), rs, cf, chosen, out))
    torch.testing.assert_close(results[0], results[1], rtol=1e-6, atol=1e-5)


@compiled
def test_compiled_rounding_is_half_to_even_at_every_magnitude():
    """The compiled ADC and DAC round as torch.round does: halves to even, below and beyond 2^22
    and 2^23 (where the plain-arithmetic rounding changes form), signs and zeros kept."""
    from imc_sim.crossbar.int8_product import CODE_MAX

    values = torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49999997, -0.3, 3.7, 2.0**22 + 0.5,
                           -(2.0**22) - 1.5, 2.0**23 - 0.5, 2.0**23 + 2.0, -(2.0**24) - 2.0, 1e9])
    y = values.repeat(3, 1)
    ones = torch.ones(y.shape[1])
    got = epilogue.apply(y.clone(), 1.0, 0.0, True, 1e30, None, ones, None, torch.empty_like(y), stream())
    assert torch.equal(got, torch.round(y))
    assert torch.equal(torch.signbit(got), torch.signbit(torch.round(y)))
    x = values.clamp(-CODE_MAX, CODE_MAX).repeat(3, 1)  # unmanaged DAC, d_in = 1, no clip
    codes, _ = epilogue.dac_codes(x, 1, 1.0, False, True, None, False)
    assert torch.equal(codes.view_as(x), torch.round(x))


@compiled
def test_compiled_noise_is_standard_normal_seeded_by_the_stream_and_split_free(monkeypatch):
    n, m = 2000, 1000
    zeros, ones = torch.zeros(n, m), torch.ones(m)

    def draw(seed, threads):
        monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
        return epilogue.apply(zeros, 1.0, 1.0, False, 1e30, None, ones, None, torch.empty(n, m),
                              stream(seed))

    z = draw(0, 1)
    assert torch.equal(z, draw(0, 2)) and torch.equal(z, draw(0, 3))  # rows split over threads
    assert not torch.equal(z, draw(1, 1))
    flat = z.flatten().double()
    assert abs(flat.mean()) < 0.003 and flat.std() == pytest.approx(1.0, abs=0.003)
    assert ((flat - flat.mean()) ** 4).mean() / flat.var() ** 2 == pytest.approx(3.0, abs=0.03)
    for p, expected in ((1.0, 0.6827), (2.0, 0.9545), (3.0, 0.9973)):  # the tails are Gaussian
        assert (flat.abs() < p).double().mean() == pytest.approx(expected, abs=0.002)
    lagged = torch.corrcoef(torch.stack([flat[:-1], flat[1:]]))[0, 1]
    assert abs(lagged) < 0.005
    columns = torch.corrcoef(z[:, :50].T.double()) - torch.eye(50, dtype=torch.float64)
    assert columns.abs().max() < 0.1  # groups of 64 columns share counters, not samples


@compiled
@pytest.mark.parametrize("add", [0.0, 0.25])
@pytest.mark.parametrize("per_row", [False, True], ids=["no-row-factor", "row-factor"])
def test_compiled_noise_takes_a_std_per_element(add, per_row):
    """sd = sqrt(var * row + add) * scale per element, in the pass as in ElementStd.tensor(): rows
    in two halves, factors 1 and 4 (or no factor)."""
    var = torch.linspace(0.0, 16.0, 400).repeat(10000, 1)
    row = torch.tensor([1.0, 4.0]).repeat_interleave(5000) if per_row else None
    sd = epilogue.ElementStd(var, add, 0.5, row)
    z = epilogue.apply(torch.zeros(10000, 400), 1.0, sd, False, 1e30, None, torch.ones(400), None,
                       torch.empty(10000, 400), stream())
    for half, factor in enumerate([1.0, 4.0] if per_row else [1.0, 1.0]):
        expected = ((var[0] * factor + add).sqrt() * 0.5)
        torch.testing.assert_close(sd.tensor()[5000 * half], expected)
        rows = z[5000 * half: 5000 * (half + 1)]
        torch.testing.assert_close(rows.std(dim=0), expected, rtol=0.05, atol=0.0)
    assert torch.equal(z[:, 0], torch.zeros(10000)) == (add == 0.0)


@compiled
def test_compiled_device_draw_interpolates_the_tables_and_sums_rows(monkeypatch):
    """draw(): per column (one target u each), mean and std over rows follow a Gaussian quantile
    table (quantiles mean + std z_l: exact under linear interpolation in z)
    linearly interpolated in u (clamped to [-1, 1]); the row sums are those of |u| and |w|."""
    from imc_sim.devices.quantiles import Z_MAX, Z_STEP, normal_scores

    grid = torch.linspace(-1, 1, 9)
    mean_tab, std_tab = 0.8 * grid + 0.1 * grid**2, 0.02 + 0.05 * grid.abs()
    table = mean_tab[:, None] + std_tab[:, None] * normal_scores()

    def draw(x, inv):
        return epilogue.draw(x, inv, table, -Z_MAX, Z_STEP, torch.Generator().manual_seed(0))

    u = torch.linspace(-1.3, 1.3, 300).repeat(4000, 1)
    x, inv = 2 * u, torch.full((4000,), 0.5)  # u given as x / 2
    w, abs_u, abs_w = draw(x, inv)
    at = u[0].clamp(-1, 1).numpy()
    expected_mean = torch.from_numpy(np.interp(at, grid.numpy(), mean_tab.numpy())).float()
    expected_std = torch.from_numpy(np.interp(at, grid.numpy(), std_tab.numpy())).float()
    se = expected_std / 4000**0.5
    assert ((w.mean(0) - expected_mean).abs() < 4.5 * se).all()
    torch.testing.assert_close(w.std(0), expected_std, rtol=0.05, atol=0.0)
    torch.testing.assert_close(abs_u, u.abs().sum(1), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(abs_w, w.abs().sum(1), rtol=1e-5, atol=1e-4)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)
    assert torch.equal(draw(x, inv)[0], w)  # split over threads
    assert torch.equal(draw(u, None)[0], w)  # u itself


@compiled
@pytest.mark.parametrize("managed", [True, False], ids=["abs-max", "unmanaged"])
@pytest.mark.parametrize("as_uint8", [True, False], ids=["uint8", "float"])
@pytest.mark.parametrize("width", [256, 200, 100], ids=["full", "padded", "padded-tile"])
def test_compiled_dac_equals_the_fallback(managed, as_uint8, width, monkeypatch):
    """Codes and noise-management scales of the compiled DAC against the torch one on the inputs
    padded with zeros to the two row tiles of 128 (a zero row tile included; unmanaged inputs
    beyond the DAC's range are clipped): the compiled DAC pads as it goes, to the same codes."""
    import dataclasses

    import torch.nn.functional as F

    from imc_sim.crossbar.periphery import Converters, dac
    from imc_sim.devices.profile import load_profile

    conv = dataclasses.replace(Converters.from_periphery(load_profile("pcm").periphery), managed=managed)
    x = torch.randn(300, 2 * 128, generator=torch.Generator().manual_seed(0)) * 2
    x[7, :128] = 0.0
    x = x[:, :width].contiguous()
    monkeypatch.setattr(epilogue, "use_compiled", True)
    codes, scale = dac(x, 2, conv, as_uint8, rows=128)
    monkeypatch.setattr(epilogue, "use_compiled", False)
    expected_codes, expected_scale = dac(F.pad(x, (0, 256 - width)), 2, conv, as_uint8)
    for torch_codes, expected in zip(dac(x, 2, conv, as_uint8, rows=128), (expected_codes, expected_scale),
                                     strict=True):  # the torch path pads too
        assert (torch_codes is None and expected is None) or torch.equal(torch_codes, expected)
    assert codes.dtype == expected_codes.dtype and codes.shape == expected_codes.shape
    differ = (codes.float() - expected_codes.float()).abs()
    assert differ.max() <= 1 and (differ > 0).float().mean() < 1e-3  # an ulp may flip a rounding
    if managed:
        torch.testing.assert_close(scale, expected_scale, rtol=0, atol=0)
        assert scale[7, 0, 0] == 1.0
    else:
        assert scale is None and expected_scale is None
        assert codes.float().abs().max() == expected_codes.float().abs().max()  # clipped alike


@compiled
def test_compiled_wrappers_refuse_a_cuda_tensor_before_touching_it():
    """A (fake) CUDA tensor reaching a compiled wrapper: a clear error, no pointer handed to C."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode(allow_non_fake_inputs=False):
        y = torch.zeros(4, 8, device="cuda")
        ones = torch.ones(8, device="cuda")
        with pytest.raises(RuntimeError, match="CPU tensors only, got one on cuda"):
            epilogue.apply_compiled(y, 1.0, 0.5, True, 10.0, None, ones, None, y,
                                    torch.Generator())
        with pytest.raises(RuntimeError, match="CPU tensors only"):
            epilogue.dac_codes(y, 1, 1.0, True, True, None, False)
        with pytest.raises(RuntimeError, match="CPU tensors only"):
            epilogue.draw(y, None, y, -6.0, 0.25, torch.Generator())


def test_apply_takes_the_torch_path_off_the_cpu(monkeypatch):
    """epilogue.apply on (fake) CUDA tensors runs the torch path, on CUDA, without mixing devices
    (this CPU build cannot make a CUDA generator: the streams hand out CPU ones, which fake
    tensors accept)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    from imc_sim.crossbar import streams

    monkeypatch.setattr(streams, "generator", lambda device, seed: torch.Generator().manual_seed(seed))
    with FakeTensorMode(allow_non_fake_inputs=False):
        y = torch.zeros(4, 8, device="cuda")
        out = epilogue.apply(y, 1.0, 0.5, True, 10.0, torch.ones(4, device="cuda"),
                             torch.ones(8, device="cuda"), torch.zeros(8, device="cuda"),
                             torch.empty_like(y), ChipStreams(0).stream("l", "read", "cuda"))
        assert out.device.type == "cuda" and out.shape == (4, 8)
