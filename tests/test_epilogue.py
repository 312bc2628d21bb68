"""The compiled periphery pass (noise, ADC, scales) against its torch fallback, and its noise."""

import numpy as np
import pytest
import torch

from imc_sim.crossbar import epilogue
from imc_sim.crossbar.ir_drop import DropTerms, IrDrop
from imc_sim.crossbar.streams import ChipStreams, Stream
from imc_sim.devices import build_family
from imc_sim.devices.profile import load_profile

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


@pytest.mark.parametrize("sd", [0.25, 4.0])
def test_fallback_noise_has_the_asked_std_and_lands_in_out(sd, fallback):
    """The torch path's output noise for any std above zero (below one ADC code too), written into
    ``out`` over the bias."""
    n, m = 400, 500
    out = torch.empty(n, m)
    got = epilogue.apply(torch.zeros(n, m), 1.0, sd, False, 1e30, None, torch.ones(m),
                         torch.full((m,), 2.0), out, stream())
    assert got is out
    noise = (out - 2.0).double()
    assert abs(noise.mean()) < 0.01 * sd and noise.std() == pytest.approx(sd, rel=0.01)


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


def call_with_one_tensor_off_the_cpu(wrapper: str, off: int) -> None:
    """Call a compiled wrapper with valid CPU tensors, except its ``off``-th tensor argument on
    ``meta`` (another device, whose data pointer is NULL)."""

    def t(i: int, *shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.zeros(shape, dtype=dtype, device="meta" if i == off else "cpu")

    i64, law = torch.int64, build_family(load_profile("pcm")).compiled_law(None)
    calls = {
        "apply_compiled": lambda: epilogue.apply_compiled(
            t(0, 4, 8), 1.0, epilogue.ElementStd(t(1, 4, 8), 0.0, 1.0, t(2, 4)), True, 10.0, t(3, 4),
            t(4, 8), t(5, 8), t(6, 4, 8), torch.Generator(),
            DropTerms(IrDrop(1.0, 1e-3, 8), t(7, 4, 8), t(8, 4, 8), 1.0)),
        "draw": lambda: epilogue.draw(t(0, 4, 8), t(1, 4), t(2, 5, 3), -2.0, 1.0, torch.Generator()),
        "dac_codes": lambda: epilogue.dac_codes(t(0, 4, 8), 2, 1.0, False, True, None, False, t(1, 2)),
        "dithered_squares": lambda: epilogue.dithered_squares(t(0, 4, 8, dtype=torch.uint8)),
        "tile_normals": lambda: epilogue.tile_normals(t(0, 2, 64), t(1, 2, dtype=i64)),
        "pcm_tiles": lambda: epilogue.pcm_tiles(
            law, 1, t(0, 2, 4, 4), t(1, 2), t(2, 2, dtype=i64), t(3, 2), t(4, 2, dtype=i64),
            t(5, 2, dtype=i64), t(6, 2, 1, 2, 4, 4, dtype=torch.int8), t(7, 2, 4, 4)),
    }
    calls[wrapper]()


TENSOR_ARGUMENTS = {"apply_compiled": 9, "draw": 3, "dac_codes": 2, "dithered_squares": 1,
                    "tile_normals": 2, "pcm_tiles": 8}


@compiled
@pytest.mark.parametrize(("wrapper", "off"), [(w, i) for w, n in TENSOR_ARGUMENTS.items() for i in range(n)])
def test_compiled_wrappers_refuse_any_tensor_off_the_cpu_before_touching_it(wrapper, off):
    """Every tensor a compiled wrapper takes, alone on another device (a CUDA model's, say): a
    clear error before any pointer reaches C, where a NULL would read as "none" or crash."""
    with pytest.raises(RuntimeError, match="CPU tensors only, got one on meta"):
        call_with_one_tensor_off_the_cpu(wrapper, off)


@compiled
@pytest.mark.parametrize(("change", "message"), [
    ({"seeds_program": None}, r"seeds_program must hold 2 values for 2 tiles of 4x4, got None"),
    ({"ratio_target": torch.ones(3)}, r"ratio_target must hold 2 values .*, got \(3,\)"),
    ({"ratio_programmed": torch.ones(2)},
     "^drift needs both ratio_programmed and seeds_coefficients, programming neither$"),
    ({"ratio_programmed": torch.ones(3), "seeds_coefficients": torch.zeros(2, dtype=torch.int64)},
     r"ratio_programmed must hold 2 values"),
    ({"ratio_programmed": torch.ones(2), "seeds_coefficients": torch.zeros(1, dtype=torch.int64)},
     r"seeds_coefficients must hold 2 values"),
    ({"seeds_read": torch.zeros(3, dtype=torch.int64)}, r"seeds_read must hold 2 values"),
    ({"stuck": torch.zeros(2, 2, 4, 4, dtype=torch.int8)},
     r"stuck must hold 128 values .*, got \(2, 2, 4, 4\)"),
    ({"live": torch.ones(2, 4, 3)}, r"live must hold 32 values"),
], ids=["no seeds", "ratios", "drift half", "programmed", "coefficients", "read", "stuck", "live"])
def test_the_pcm_pass_refuses_what_it_would_read_past(change, message):
    """The compiled PCM pass reads each per-tile tensor and the fault masks blindly at the sizes
    of ``u_target`` [tiles, cols, rows]: anything else is refused by name before C sees it."""
    law = build_family(load_profile("pcm")).compiled_law(None)
    arguments = {"ratio_target": torch.ones(2), "seeds_program": torch.zeros(2, dtype=torch.int64)}
    with pytest.raises(ValueError, match=message):
        epilogue.pcm_tiles(law, 2, torch.zeros(2, 4, 4), **{**arguments, **change})


@compiled
def test_the_dac_pass_refuses_factors_or_inputs_that_do_not_fit_its_tiles():
    x = torch.zeros(3, 10)
    with pytest.raises(ValueError, match=r"^tile_factor has shape \(3,\), not \(2,\)$"):
        epilogue.dac_codes(x, 2, 1.0, False, True, None, False, torch.ones(3))
    with pytest.raises(ValueError, match=r"^10 inputs do not fit 2 row tiles of 4$"):
        epilogue.dac_codes(x, 2, 1.0, False, True, None, False, rows=4)


@compiled
def test_the_pcm_pass_converts_its_callers_dtypes_rather_than_reading_their_bytes():
    """Targets, ratios and live masks in float64, seeds in int32, stuck codes in int64 give what
    the pass's own float32, int64 and int8 give, for programming and for drift."""
    family = build_family(load_profile("pcm"))
    gen = torch.Generator().manual_seed(0)
    u = torch.rand(2, 4, 4, generator=gen) * 2 - 1
    ratio = torch.full((2,), 0.1)
    seeds = [torch.randint(0, 2**31 - 1, (2,), generator=gen) for _ in range(3)]
    stuck = torch.randint(0, 3, (2, 1, 2, 4, 4), generator=gen, dtype=torch.int8)
    live = (torch.rand(2, 4, 4, generator=gen) > 0.2).float()

    def both(**kwargs):
        return (epilogue.pcm_tiles(family.compiled_law(None), 1, u, ratio, seeds[0], **kwargs),
                epilogue.pcm_tiles(family.compiled_law(86400.0), 1, u, ratio, seeds[0], ratio, seeds[1],
                                   seeds[2], **kwargs))

    expected = both(stuck=stuck, live=live)
    u, ratio, live = u.double(), ratio.double(), live.double()
    seeds, stuck = [s.int() for s in seeds], stuck.long()
    for got, want in zip(both(stuck=stuck, live=live), expected, strict=True):
        assert torch.equal(got, want)


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
