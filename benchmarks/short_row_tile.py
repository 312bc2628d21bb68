"""Benchmark: a short last row tile multiplying only its real inputs against the same tile padded.

A 384 -> 384 and a 384 -> 1536 layer on pcm-chip (256-row tiles: 256 + 128 inputs), forward of
4,096 tokens, the two layers alternated 15 times, one thread; medians printed and written to
benchmarks/results/short_row_tile.json.

    python benchmarks/short_row_tile.py
"""
import json
import statistics
import time
from pathlib import Path

import torch

import imc_sim  # noqa: F401
from imc_sim.crossbar.periphery import TileStack
from imc_sim.crossbar.streams import ChipStreams
from imc_sim.crossbar.tiles import CrossbarLinear
from imc_sim.devices import build_family
from imc_sim.devices.profile import load_profile

torch.set_num_threads(1)
profile = load_profile("pcm-chip")
rows = []
for out in (384, 1536):
    torch.manual_seed(0)
    linear = torch.nn.Linear(384, out)
    layers = [CrossbarLinear(linear, profile, build_family(profile)) for _ in range(2)]
    x = torch.randn(4096, 384)
    for layer in layers:
        layer.program(ChipStreams(0), "l")
        layer.input_ranges = torch.full((layer.row_tiles,), 3.0)
    padded = layers[1]
    padded._stack = TileStack.build(padded.weights, padded.scales, padded.conv, padded.read_law,
                                    padded.ir_drop)
    assert layers[0].stack.used == (256, 128)
    times = {0: [], 1: []}
    with torch.no_grad():
        for _ in range(15):
            for i, layer in enumerate(layers):
                t = time.perf_counter()
                layer(x)
                times[i].append(time.perf_counter() - t)
    a, b = statistics.median(times[0]), statistics.median(times[1])
    print(f"384 -> {out}: trimmed {1e3 * a:.1f} ms, padded {1e3 * b:.1f} ms, ratio {a / b:.2f}")
    rows.append({"in": 384, "out": out, "trimmed_ms": 1e3 * a, "padded_ms": 1e3 * b, "ratio": a / b})
out_path = Path(__file__).parent / "results" / "short_row_tile.json"
out_path.parent.mkdir(exist_ok=True)
out_path.write_text(json.dumps(rows, indent=1))
