"""A chip's seed fixes its numbers, whatever the threads, the order of drift times, or what else
is deployed; torch's global generator is never used."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import make_tiny_bert

from imc_sim.crossbar import epilogue
from imc_sim.crossbar.mapping import deploy_model
from imc_sim.crossbar.periphery import Converters, dac
from imc_sim.crossbar.streams import CHUNK, ChipStreams, stable_seed
from imc_sim.crossbar.tiles import CrossbarLinear
from imc_sim.deploy.chip import Chip
from imc_sim.deploy.sweep import drift_sweep
from imc_sim.devices import build_family
from imc_sim.devices.profile import load_profile
from imc_sim.devices.quantiles import QuantileTables
from imc_sim.training.device_aware import DeviceSampler

HOUR, DAY, YEAR = 3600.0, 86400.0, 365 * 86400.0


@pytest.fixture
def threads():
    """Set torch's thread count inside a test; restored afterwards."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


def test_stable_seed_is_fixed_across_runs_and_keys_matter():
    assert stable_seed(0, "layer", "program", 3, None) == 8829393061265670533
    assert stable_seed(0, "layer", "program", 3, None) != stable_seed(1, "layer", "program", 3, None)
    assert ChipStreams(0).stream("a", "read", "cpu", time=1).keys == \
        ChipStreams(0).stream("a", "read", "cpu", time=1.0).keys  # 1 s is 1.0 s


def test_streams_are_standard_normal_and_repeat_draw_by_draw():
    a = ChipStreams(5).stream("layer", "program", "cpu", tile=2)
    b = ChipStreams(5).stream("layer", "program", "cpu", tile=2)
    first, second = a.normal((500, 400)), a.normal((500, 400))
    assert torch.equal(first, b.normal((500, 400))) and torch.equal(second, b.normal((500, 400)))
    assert not torch.equal(first, second)
    other = ChipStreams(5).stream("layer", "program", "cpu", tile=3).normal((500, 400))
    assert not torch.equal(first, other)
    assert abs(first.mean()) < 0.01 and first.std() == pytest.approx(1.0, abs=0.01)


def test_large_fills_do_not_depend_on_the_thread_count(threads):
    shape = (3 * CHUNK + 17,)
    fills = []
    for n in (1, 2, 3):
        threads(n)
        fills.append(ChipStreams(0).stream("layer", "drift-read", "cpu", 0, DAY).normal(shape))
    assert torch.equal(fills[0], fills[1]) and torch.equal(fills[0], fills[2])
    chunks = fills[0].split(CHUNK)
    assert not torch.equal(chunks[0][:100], chunks[1][:100])  # each chunk its own generator


def test_large_fills_of_other_chips_layers_times_and_draws_differ_in_every_chunk():
    """Each chunk of a fill over CHUNK elements is seeded from the stream's keys and draw, not from
    its index alone: two chips (or layers, drift times, draws) never share a chunk."""
    shape = (CHUNK + 17,)
    stream = ChipStreams(0).stream("layer", "drift-read", "cpu", 0, DAY)
    fill = stream.normal(shape)
    others = [ChipStreams(1).stream("layer", "drift-read", "cpu", 0, DAY).normal(shape),
              ChipStreams(0).stream("other", "drift-read", "cpu", 0, DAY).normal(shape),
              ChipStreams(0).stream("layer", "drift-read", "cpu", 0, 2 * DAY).normal(shape),
              stream.normal(shape)]
    for other in others:
        assert not torch.equal(fill[:100], other[:100])
        assert not torch.equal(fill[CHUNK:], other[CHUNK:])


def test_tile_seeds_are_one_per_layer_purpose_tile_and_time():
    """A tile's device normals are keyed by its layer, purpose, index and time: the read noise at
    each drift time is fresh, and a fault draw's two parts (``time="devices"``, ``"columns"``) are
    independent."""
    streams = ChipStreams(0)
    seeds = [streams.tile_seeds(*key) for key in [
        ("layer", "drift-read", range(2), HOUR), ("layer", "drift-read", range(2), DAY),
        ("other", "drift-read", range(2), HOUR), ("layer", "program", range(2), HOUR),
        ("layer", "faults", range(2), "devices"), ("layer", "faults", range(2), "columns")]]
    every = [seed for tiles in seeds for seed in tiles]
    assert len(set(every)) == len(every)


def pcm_layer(tile: int = 64) -> CrossbarLinear:
    profile = load_profile("pcm")
    profile = dataclasses.replace(profile, periphery=dataclasses.replace(
        profile.periphery, tile_rows=tile, tile_cols=tile))
    linear = torch.nn.Linear(96, 600)
    return CrossbarLinear(linear, profile, build_family(profile))


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled-epilogue", "torch-epilogue"])
def test_a_chip_does_not_depend_on_the_thread_count(compiled, threads, monkeypatch):
    monkeypatch.setattr(epilogue, "use_compiled", compiled and epilogue.AVAILABLE)
    torch.manual_seed(0)
    layer = pcm_layer()
    x = torch.randn(512, 96)  # 512 x 600 outputs: the periphery pass is split over threads
    outputs = []
    for n in (1, 2):
        threads(n)
        streams = ChipStreams(7)
        layer.program(streams, "layer")
        layer.drift(DAY, streams, "layer")
        with torch.no_grad():
            outputs.append((layer(x), layer(x)))
    assert torch.equal(outputs[0][0], outputs[1][0]) and torch.equal(outputs[0][1], outputs[1][1])
    assert not torch.equal(outputs[0][0], outputs[0][1])  # each read draws afresh


def test_compiled_training_draw_and_dac_do_not_depend_on_the_thread_count(threads):
    """The compiled passes split their rows over torch's OpenMP threads: the same numbers for 1,
    2 and 3 threads (sizes above the pass's threshold for splitting)."""
    if not epilogue.AVAILABLE:
        pytest.skip("the C pass was not built (no compiler)")
    profile = load_profile("pcm")
    tables = QuantileTables.measure(profile, [DAY])
    w = torch.randn(300, 512, generator=torch.Generator().manual_seed(0))
    x = torch.randn(200, 1024, generator=torch.Generator().manual_seed(1))
    conv = Converters.from_periphery(profile.periphery)
    seen = []
    for n in (1, 2, 3):
        threads(n)
        sampler = DeviceSampler(profile, tables, ChipStreams(4), "layer")
        seen.append((*sampler.device_weights(w, 0, frozen=False), *dac(x, 2, conv, as_uint8=True)))
    for other in seen[1:]:
        assert all(torch.equal(a, b) for a, b in zip(seen[0], other, strict=True))


def test_drift_times_in_any_order_give_the_same_chip():
    torch.manual_seed(0)
    layer = pcm_layer()
    x = torch.randn(8, 96)
    per_order = []
    for times in ([HOUR, DAY, YEAR], [YEAR, DAY, HOUR]):
        streams = ChipStreams(3)
        layer.program(streams, "layer")
        seen = {}
        for t in times:
            layer.drift(t, streams, "layer")
            with torch.no_grad():
                seen[t] = layer(x)
        per_order.append(seen)
    for t in (HOUR, DAY, YEAR):
        assert torch.equal(per_order[0][t], per_order[1][t])
    assert not torch.equal(per_order[0][HOUR], per_order[0][YEAR])


def test_a_layer_is_the_same_chip_alone_or_beside_others(token_batch):
    """The tiny BERT's block layers, deployed alone or with the head on tiles too (more layers,
    programmed in between), and beside a second deployed model: the same numbers."""
    alone = deploy_model(make_tiny_bert(), load_profile("pcm"))
    crowded = deploy_model(make_tiny_bert(), load_profile("pcm"), analog_head=True)
    neighbour = deploy_model(make_tiny_bert(hidden=64), load_profile("pcm"))
    assert set(alone.layers) < set(crowded.layers)
    Chip(neighbour, 0).drift_to(DAY)
    for deployment in (alone, crowded):
        Chip(deployment, 0).drift_to(DAY)
    gen = torch.Generator().manual_seed(0)
    for name, layer in alone.layers.items():
        other = crowded.layers[name]
        assert torch.equal(layer.weights, other.weights) and torch.equal(layer.scales, other.scales)
        x = torch.randn(4, layer.in_features, generator=gen)
        with torch.no_grad():
            assert torch.equal(layer(x), other(x))


def test_sweep_leaves_the_global_generator_alone_and_repeats(token_batch):
    deployment = deploy_model(make_tiny_bert(), load_profile("pcm"))
    logits = []

    def measure() -> float:
        with torch.no_grad():
            logits.append(deployment.model(**token_batch).logits.clone())
        return float(logits[-1][0, 0])

    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    first = drift_sweep(deployment, measure, [0, 1], [1.0, YEAR], progress=False)
    assert torch.equal(torch.rand(1), expected_next)  # never touched
    again = drift_sweep(deployment, measure, [0, 1], [1.0, YEAR], progress=False)
    assert first == again
    assert [p.t_seconds for p in first] == [1.0, YEAR] and len(first[0].metrics) == 2
    assert set(first[0].to_json()) == {"t_seconds", "label", "metrics", "mean", "std", "min"}
    assert not torch.equal(logits[0], logits[2])  # seed 0 and seed 1 at 1 s
    assert not torch.equal(logits[0], logits[1])  # the same chip at 1 s and at 1 y


@pytest.mark.parametrize("profile", ["pcm", "gaussian"])
def test_cpu_tile_groups_change_no_number(profile, monkeypatch):
    """Tiles programmed and drifted in cache-sized groups (CPU) or all at once (other devices):
    the same chip."""
    from imc_sim.crossbar import tiles

    torch.manual_seed(0)
    base = load_profile(profile)
    base = dataclasses.replace(base, periphery=dataclasses.replace(base.periphery, tile_rows=32,
                                                                   tile_cols=32))
    linear = torch.nn.Linear(80, 70)
    states = []
    for group in (1, 32 * 32 * 2, 1 << 30):  # one tile, two tiles, every tile per group
        monkeypatch.setattr(tiles, "CPU_GROUP", group)
        layer = CrossbarLinear(linear, base, build_family(base))
        streams = ChipStreams(4)
        layer.program(streams, "layer")
        layer.drift(DAY, streams, "layer")
        states.append((layer.programmed, layer.weights, layer.scales))
    for state in states[1:]:
        assert all(torch.equal(a, b) for a, b in zip(states[0], state, strict=True))
