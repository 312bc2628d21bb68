"""Crossbar values mutation testing found unchecked (docs/mutation.md): the faults' shapes, dtype
and per-layer draws, the static input ranges' percentile index and floor, the DAC's division by them,
IR drop without wire resistance, a CrossbarLinear's calibration forward, read stream and repr, the
drift compensation's read noise and means, and the stored ranges' record."""

import dataclasses
import math

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from imc_sim.crossbar import compensation, epilogue, int8_product
from imc_sim.crossbar.compensation import READOUT_FLOOR, read_tiles, readout
from imc_sim.crossbar.faults import HIGH, LOW, OK, live_columns, stuck_devices
from imc_sim.crossbar.grid import TileGrid
from imc_sim.crossbar.input_ranges import NO_RANGE, Calibration, StoredRanges, batch_range
from imc_sim.crossbar.ir_drop import g_ratio
from imc_sim.crossbar.periphery import Converters, TileStack, dac
from imc_sim.crossbar.streams import ChipStreams
from imc_sim.crossbar.tiles import CrossbarLinear
from imc_sim.devices import build_family
from imc_sim.devices.family import ReadNoise
from imc_sim.devices.profile import Faults, Periphery, load_profile
from imc_sim.errors import ImcSimError

CPU = torch.device("cpu")


def test_stuck_devices_are_int8_codes_drawn_per_layer():
    faults = Faults(stuck_low=0.3, stuck_high=0.3)
    streams = ChipStreams(0)
    a = stuck_devices(faults, streams, "layer.a", range(3), (16, 8), CPU)
    b = stuck_devices(faults, streams, "layer.b", range(3), (16, 8), CPU)
    assert a.dtype == torch.int8 and a.shape == (3, 16, 8)
    assert set(a.unique().tolist()) == {OK, LOW, HIGH}
    assert not torch.equal(a, b)  # each layer its own faults
    assert torch.equal(a, stuck_devices(faults, ChipStreams(0), "layer.a", range(3), (16, 8), CPU))


def test_live_columns_are_a_column_mask_drawn_per_layer():
    faults = Faults(dead_columns=0.5)
    streams = ChipStreams(0)
    a = live_columns(faults, streams, "layer.a", range(2), 12, CPU)
    b = live_columns(faults, streams, "layer.b", range(2), 12, CPU)
    assert a.shape == (2, 12, 1) and set(a.unique().tolist()) == {0.0, 1.0}
    assert not torch.equal(a, b)


def test_percentile_picks_the_kth_smallest_without_interpolation():
    x = torch.tensor([[1.0, 2.0], [-3.0, 0.5]])
    assert batch_range(x, 2, 25.0).tolist() == [0.5]  # k = ceil(0.25 * 4) = 1: the smallest
    assert batch_range(x, 2, 50.0).tolist() == [1.0]
    assert batch_range(x, 2, 100.0).tolist() == [3.0]  # k = n: the largest
    with_zero_vector = torch.tensor([[0.0, 0.0, 4.0, 1.0], [2.0, 1.0, 0.0, 0.0]])
    assert batch_range(with_zero_vector, 2, 100.0).tolist() == [2.0, 4.0]
    assert batch_range(with_zero_vector, 2, 50.0).tolist() == [1.0, 1.0]  # zero vectors skipped


def test_calibrated_ranges_are_the_batch_mean_and_one_for_a_zero_tile():
    calibration = Calibration(rows=2, percentile=100.0)
    calibration.add(torch.tensor([[0.0, 0.0, 0.25, 0.1]]))
    calibration.add(torch.tensor([[0.0, 0.0, 0.75, 0.1]]))
    assert calibration.ranges().tolist() == [1.0, 0.5]


def test_ranges_before_any_batch_is_a_one_line_error():
    with pytest.raises(ImcSimError) as error:
        Calibration(rows=2, percentile=99.0).ranges()
    assert str(error.value) == NO_RANGE


@pytest.mark.parametrize("compiled", [False, True])
def test_static_ranges_divide_each_row_tile_before_the_dac(monkeypatch, compiled):
    if compiled and not epilogue.AVAILABLE:
        pytest.skip("the compiled pass is not built here")
    monkeypatch.setattr(epilogue, "use_compiled", compiled)
    conv = Converters(perfect=False, managed=False, d_in=0.5, quant_in=True, out_noise=0.0, adc_step=0.0,
                      out_bound=100.0, inp_bound=127.0, static=True)
    x = torch.arange(1.0, 9.0).view(2, 4)
    codes, scale = dac(x, 2, conv, False, torch.tensor([2.0, 0.5]))
    assert scale is None  # the ranges multiply back through the column scales, not per vector
    # x / range / d_in, per row tile: [1, 2 | 3, 4] / [2 | 0.5] / 0.5
    assert codes.reshape(2, 4).tolist() == [[1.0, 2.0, 12.0, 16.0], [5.0, 6.0, 28.0, 32.0]]
    codes_u8, _ = dac(x, 2, conv, True, torch.tensor([2.0, 0.5]))
    assert (codes_u8.int() - 128).tolist() == [[[1, 2], [5, 6]], [[12, 16], [28, 32]]]


@pytest.mark.parametrize("compiled", [False, True])
def test_abs_max_codes_clip_at_an_input_bound_below_one(monkeypatch, compiled):
    """With abs-max scaling every |x / s| <= 1, so the DAC clips only where inp_bound < 1."""
    if compiled and not epilogue.AVAILABLE:
        pytest.skip("the compiled pass is not built here")
    monkeypatch.setattr(epilogue, "use_compiled", compiled)
    conv = Converters.from_periphery(Periphery(dac_bits=8, inp_bound=0.5))
    codes, scale = dac(torch.tensor([[-4.0, 1.0, 2.0, 0.5]]), 1, conv, False)
    assert scale.flatten().tolist() == [4.0]
    bound = 0.5 / conv.d_in  # 63.5 codes
    assert codes.flatten().tolist() == [-bound, round(0.25 / conv.d_in), bound, round(0.125 / conv.d_in)]


@pytest.mark.skipif(int8_product.limbs() is None, reason="no exact int8 product in this torch here")
def test_a_cpu_stack_with_int8_codes_packs_its_weights_and_read_variance():
    """The int8 product (and its read-noise variance) is what runs on the CPU for a DAC of at most
    8 bits: the stack holds both as prepacked limbs, one per row tile."""
    conv = Converters.from_periphery(Periphery(dac_bits=8))
    assert conv.int8
    weights, scales = torch.rand(2, 3, 4) * 2 - 1, torch.ones(2, 3)
    law = ReadNoise(c1=0.01)
    stack = TileStack.build(weights, scales, conv, read_law=law)
    assert len(stack.packed) == 2 and all(isinstance(p, int8_product.Int8Weights) for p in stack.packed)
    assert isinstance(stack.read_var, tuple) and len(stack.read_var) == 2
    assert all(isinstance(v, int8_product.Int8Variance) for v in stack.read_var)
    fp32 = TileStack.build(weights, scales, dataclasses.replace(conv, int8=False), read_law=law)
    assert fp32.packed is None and fp32.read_var is law  # the variance made per MVM, not kept


def test_g_ratio_is_inverse_wire_conductance_and_inf_without_wires():
    pcm = load_profile("pcm")
    for r in (0.35, 1.0):
        profile = dataclasses.replace(pcm, periphery=dataclasses.replace(pcm.periphery, wire_resistance=r))
        assert g_ratio(profile) == pytest.approx(1.0 / (r * 25.0e-6))
    none = dataclasses.replace(pcm, periphery=dataclasses.replace(pcm.periphery, wire_resistance=0.0))
    assert g_ratio(none) == math.inf


def chip_and_input():
    pcm = load_profile("pcm")
    linear = torch.nn.Linear(20, 6)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(6, 20, generator=torch.Generator().manual_seed(0))
                            * torch.arange(1.0, 7.0)[:, None])  # per-column scales differ
        linear.bias.copy_(torch.arange(6.0))
    x = torch.randn(5, 20, generator=torch.Generator().manual_seed(1))
    return linear, CrossbarLinear(linear, pcm, build_family(pcm)), x


def test_calibration_forward_is_the_digital_layer():
    linear, chip, x = chip_and_input()
    chip.begin_calibration()
    with torch.no_grad():
        torch.testing.assert_close(chip(x), linear(x))
    chip.end_calibration()
    with pytest.raises(RuntimeError, match=r"^end_calibration\(\) without begin_calibration\(\)$"):
        chip.end_calibration()


def test_moving_a_chip_restarts_its_read_stream_from_the_same_keys():
    _, chip, x = chip_and_input()
    streams = ChipStreams(0)
    chip.program(streams, "layer")
    with torch.no_grad():
        first, second = chip(x), chip(x)
        assert not torch.equal(first, second)  # fresh read noise at every MVM
        chip.float()
        assert torch.equal(chip(x), first)


def plain_converters(d_in: float) -> Converters:
    """No noise management, DAC rounding, output noise or ADC: an input x gives the code x / d_in."""
    return Converters(perfect=False, managed=False, d_in=d_in, quant_in=False, out_noise=0.0, adc_step=0.0,
                      out_bound=1e6, inp_bound=1e6)


def test_compensation_read_out_carries_each_row_tiles_own_read_noise():
    """The one-hot read-out of a row tile is W plus read noise of variance c^2 V in code units,
    i.e. std sqrt(V) in weight units, drawn per row tile: two identical row tiles read differently."""
    weights = torch.rand(1, 64, 128).expand(2, 64, 128).contiguous()  # [row_tiles, out, rows]
    var = torch.full_like(weights, 0.04)
    conv = plain_converters(0.5)  # each one-hot input has the code 2
    out = read_tiles(weights, var, conv, ChipStreams(0), "layer", 3600.0)
    noise = out - weights.transpose(1, 2)
    assert out.shape == (2, 128, 64) and abs(noise.std().item() - 0.2) < 0.01
    assert not torch.equal(out[0], out[1])
    assert torch.equal(read_tiles(weights, None, conv, ChipStreams(0), "layer", 3600.0),
                       weights.transpose(1, 2))


def test_readout_is_the_mean_abs_output_over_the_real_rows_and_columns():
    grid = TileGrid.of(5, 3, 4, 2)  # row tiles of 4 + 1 rows, column tiles of 2 + 1 outputs
    outputs = torch.rand(2, 4, 3, generator=torch.Generator().manual_seed(0)) + 0.5
    outputs[1, 1:] = 100.0  # padding rows of the second row tile: left out
    real = outputs.clone()
    real[1, 1:] = float("nan")
    per_column = torch.stack([real[0].mean(0), real[1, 0]])
    torch.testing.assert_close(readout(-outputs, grid, True), per_column)
    tile = [[real[r, :, :2].nanmean(), real[r, :, 2:].nanmean()] for r in range(2)]
    expected = torch.tensor([[a, a, b] for a, b in tile])
    torch.testing.assert_close(readout(outputs, grid, False), expected)
    assert torch.equal(readout(outputs * 1e-6, grid, False), torch.full((2, 3), READOUT_FLOOR))


def test_a_layer_before_programming_has_no_programmed_weights_and_refuses_drift():
    pcm = load_profile("pcm")
    layer = CrossbarLinear(torch.nn.Linear(40, 24), pcm, build_family(pcm))
    assert layer.programmed is None
    with pytest.raises(RuntimeError, match=r"^drift\(\) before program\(\): program the layer first$"):
        layer.drift(3600.0, ChipStreams(0), "layer")
    layer.program(ChipStreams(0), "layer")
    assert layer.programmed is not None


def test_a_layers_repr_names_its_tile_grid():
    profile = load_profile("pcm-chip")
    layer = CrossbarLinear(torch.nn.Linear(300, 200), profile, build_family(profile))
    assert repr(layer) == "CrossbarLinear(in=300, out=200, tiles=2x1 of 256x200)"


def test_stored_ranges_record_holds_cpu_float32_whatever_the_ranges():
    ranges = StoredRanges(256, "fixed", 99.0, {"a": torch.tensor([0.5, 2.0], dtype=torch.float64)})
    record = ranges.to_record()["layers"]["a"]
    assert record.dtype == torch.float32 and record.tolist() == [0.5, 2.0]
    with FakeTensorMode(allow_non_fake_inputs=False):
        on_cuda = StoredRanges(256, "fixed", 99.0, {"a": torch.ones(2, device="cuda")})
        assert on_cuda.to_record()["layers"]["a"].device.type == "cpu"


def chip_layer(profile, name: str, weight: torch.Tensor) -> CrossbarLinear:
    linear = torch.nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        linear.weight.copy_(weight)
    out = CrossbarLinear(linear, profile, build_family(profile))
    out.program(ChipStreams(3), name)
    return out


def faulty_pcm(**periphery):
    pcm = load_profile("pcm")
    return dataclasses.replace(pcm, faults=Faults(stuck_low=0.2, stuck_high=0.1, dead_columns=0.2),
                               periphery=dataclasses.replace(pcm.periphery, tile_rows=16, tile_cols=16,
                                                             **periphery))


def test_a_programmed_layers_state_is_in_its_buffers():
    """Every tensor of a programmed chip is a buffer (moved by .to(), kept by state_dict), or is
    computed again from the chip's streams (the programmed weights) or from buffers (the live mask)."""
    layer = chip_layer(faulty_pcm(), "a", torch.randn(24, 40))
    assert {name for name, _ in layer.named_buffers(remove_duplicate=False)} == {
        "bias", "target", "mapping", "stuck", "live_rows", "live_cols", "programmed_ratio", "baseline",
        "weights", "scales"}
    assert torch.equal(layer.programmed, layer.programmed)  # programmed again: the same numbers
    exact = chip_layer(load_profile("ideal"), "a", torch.randn(24, 40))
    assert "dense" in {name for name, _ in exact.named_buffers()}


def test_two_layers_of_a_chip_draw_their_own_faults_programming_and_read_out():
    """Two layers with the same weights on one chip: their stuck devices, dead columns,
    programmed weights and compensation baselines differ (each layer its own streams)."""
    weight = torch.randn(24, 40, generator=torch.Generator().manual_seed(0))
    a, b = chip_layer(faulty_pcm(), "a", weight), chip_layer(faulty_pcm(), "b", weight)
    for name in ("stuck", "live", "programmed", "baseline"):
        assert not torch.equal(getattr(a, name), getattr(b, name)), name


def test_the_compensation_read_out_sees_the_read_noise_and_ir_drop(monkeypatch):
    seen = []

    def spy(weights, read_var, conv, streams, layer, time, ir_drop=None):
        seen.append((read_var is not None, ir_drop is not None, layer, time))
        return real(weights, read_var, conv, streams, layer, time, ir_drop)

    real = compensation.read_tiles
    monkeypatch.setattr(compensation, "read_tiles", spy)
    profile = faulty_pcm(ir_drop=1.0)
    layer = chip_layer(profile, "a", torch.randn(24, 40))
    layer.drift(86400.0, ChipStreams(3), "a")
    assert seen == [(True, True, "a", "baseline"), (True, True, "a", 86400.0)]


def test_each_drift_time_reads_its_own_drift_noise(monkeypatch):
    calls = []
    real = ChipStreams.tile_seeds  # the keys of the device normals, in the compiled pass and in torch

    def spy(self, layer, purpose, tiles, time=None):
        calls.append((purpose, time))
        return real(self, layer, purpose, tiles, time)

    monkeypatch.setattr(ChipStreams, "tile_seeds", spy)
    layer = chip_layer(load_profile("pcm"), "a", torch.randn(24, 40))
    calls.clear()
    layer.drift(3600.0, ChipStreams(3), "a")
    assert ("drift-read", 3600.0) in calls and ("drift-coefficients", None) in calls


def test_a_layer_reads_the_mean_of_its_device_pairs():
    """pcm-chip's two pairs per weight halve the per-read variance law."""
    profile = load_profile("pcm-chip")
    layer = CrossbarLinear(torch.nn.Linear(8, 4), profile, build_family(profile))
    assert layer.read_law == ReadNoise(c1=0.0175**2 / 2)
