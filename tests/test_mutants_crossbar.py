"""Crossbar values mutation testing found unchecked (docs/mutation.md): the faults' shapes, dtype
and per-layer draws, the static input ranges' percentile index and floor, scale_inputs on a batch,
IR drop without wire resistance, and a CrossbarLinear's calibration forward and read stream."""

import dataclasses
import math

import pytest
import torch

from imc_sim.crossbar.faults import HIGH, LOW, OK, live_columns, stuck_devices
from imc_sim.crossbar.input_ranges import NO_RANGE, Calibration, batch_range, scale_inputs
from imc_sim.crossbar.ir_drop import g_ratio
from imc_sim.crossbar.streams import ChipStreams
from imc_sim.crossbar.tiles import CrossbarLinear
from imc_sim.devices import build_family
from imc_sim.devices.profile import Faults, load_profile
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


def test_scale_inputs_divides_each_row_tile_of_every_vector():
    x = torch.arange(1.0, 9.0).view(2, 4)
    scaled, scales = scale_inputs(x, torch.tensor([2.0, 0.5]))
    assert scaled.tolist() == [[0.5, 1.0, 6.0, 8.0], [2.5, 3.0, 14.0, 16.0]]
    assert scales.shape == (2, 2, 1) and scales[:, :, 0].tolist() == [[2.0, 0.5], [2.0, 0.5]]


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
