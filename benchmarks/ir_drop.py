"""Benchmark: what IR drop (``periphery.ir_drop``) costs on one 384x384 pcm layer.

The layer (pcm profile, IR drop off, and on with scale 1 and 0.35 ohm), programmed and drifted to
1 d, forward on 8192 x 384 inputs (a batch of 128 x 64 tokens), and its realization: program,
drift to 1 d (with the compensation read-out) and the first forward, which packs the tiles (three
weight sets with IR drop, one without). Interleaved repeats, one process, so that a
slower stretch of a shared machine hits both; prints min and median per arm.

    PYTHONPATH=src python benchmarks/ir_drop.py [--threads 1] [--repeats 7]
"""

from __future__ import annotations

import dataclasses
import statistics
import timeit

import torch

from imc_sim.cli import OneLineParser, run_script
from imc_sim.cli.numbers import positive_int
from imc_sim.crossbar.streams import ChipStreams
from imc_sim.crossbar.tiles import CrossbarLinear
from imc_sim.devices import build_family
from imc_sim.devices.profile import load_profile


def main() -> None:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=positive_int, default=1)
    parser.add_argument("--repeats", type=positive_int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    linear = torch.nn.Linear(384, 384)
    pcm = load_profile("pcm")
    on = dataclasses.replace(pcm, periphery=dataclasses.replace(pcm.periphery, ir_drop=1.0))
    layers = {name: CrossbarLinear(linear, p, build_family(p)) for name, p in (("off", pcm), ("on", on))}
    x = torch.randn(8192, 384)

    def realize(layer: CrossbarLinear) -> None:
        layer.program(ChipStreams(0), "layer")
        layer.drift(86400.0, ChipStreams(0), "layer")
        layer(x)

    forward = {name: [] for name in layers}
    realization = {name: [] for name in layers}
    with torch.no_grad():
        for layer in layers.values():  # warm-up
            realize(layer)
            layer(x)
        for _ in range(args.repeats):
            for name, layer in layers.items():
                realization[name].append(timeit.timeit(lambda layer=layer: realize(layer), number=1))
                forward[name].append(timeit.timeit(lambda layer=layer: layer(x), number=3) / 3)
    for name in layers:
        fwd, real = forward[name], realization[name]
        print(f"IR drop {name:3}: forward {1e3 * min(fwd):6.1f} ms "
              f"(median {1e3 * statistics.median(fwd):6.1f}), realization "
              f"{1e3 * min(real):5.1f} ms (median {1e3 * statistics.median(real):5.1f})")
    ratios = [statistics.median(d["on"]) / statistics.median(d["off"]) for d in (forward, realization)]
    print(f"on / off (medians): forward {ratios[0]:.2f}x, realization {ratios[1]:.2f}x, "
          f"threads {torch.get_num_threads()}")


if __name__ == "__main__":
    run_script(main)
