"""Benchmark: the compiled periphery passes alone, on one thread (ms per call, best of --repeats).

A row tile's inputs and product of --rows x --cols (default 8192 x 384: a batch of 128 x 64
tokens on a 384-wide layer): the DAC (noise management, codes, clip; uint8 out), the
post-product pass without noise, with one std and with a per-element std (the per-read noise's
variance), the squared codes for that variance, and device-aware training's weight draw from a
quantile table for a 1536 x 384 layer (MiniLM's feed-forward). Which CPU clone runs (x86-64-v4 / v3 / v2 /
default) depends on the processor; the table says what torch reports.

    python benchmarks/compiled_passes.py
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from imc_sim.cli import OneLineParser, run_script
from imc_sim.cli.numbers import positive_int
from imc_sim.crossbar import epilogue
from imc_sim.crossbar.streams import ChipStreams
from imc_sim.devices.moments import GRID
from imc_sim.devices.quantiles import Z_MAX, Z_STEP, normal_scores
from imc_sim.host import this_host
from imc_sim.table import format_table


def best_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return 1e3 * best


def main() -> None:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=positive_int, default=8192)
    parser.add_argument("--cols", type=positive_int, default=384)
    parser.add_argument("--repeats", type=positive_int, default=20)
    args = parser.parse_args()
    if not epilogue.AVAILABLE:
        raise SystemExit("the compiled pass is not built (pip install -e . with a C compiler)")
    torch.set_num_threads(1)
    n, m = args.rows, args.cols
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, m, generator=gen), 50 * torch.randn(n, m, generator=gen)
    row_scale, col_factor = torch.rand(n, generator=gen), torch.rand(m, generator=gen)
    var = epilogue.ElementStd(torch.rand(n, m, generator=gen), 0.25, 0.5)
    out = torch.empty_like(y)
    stream = ChipStreams(0).stream("layer", "read", "cpu")
    def post(sd: float | epilogue.ElementStd) -> Callable[[], object]:
        return lambda: epilogue.apply(y, 1.0, sd, True, 127.0, row_scale, col_factor, out, out, stream)

    def dac() -> object:
        return epilogue.dac_codes(x, 1, 127.0, True, True, 127.0, True)

    codes = dac()[0][0]
    weights = 0.3 * torch.randn(1536, 384, generator=gen)
    table = (0.8 * torch.linspace(-1, 1, GRID)[:, None] + 0.05 * normal_scores()).contiguous()

    def draw() -> object:
        return epilogue.draw(weights, None, table, -Z_MAX, Z_STEP, gen)

    runs = {
        "DAC (abs-max, 8 bits, clip, uint8)": dac,
        "post-product pass, no noise": post(0.0),
        "post-product pass, one noise std": post(0.5),
        "post-product pass, per-element std": post(var),
        "squared codes (one dithered uint8 each)": lambda: epilogue.dithered_squares(codes),
        "weight draw, 1536 x 384 (quantile table)": draw,
    }
    rows = [[name, f"{best_ms(fn, args.repeats):.2f}"] for name, fn in runs.items()]
    print(f"{n} x {m}, one thread; {this_host().describe()}")
    print(format_table(["pass", "ms"], rows))


if __name__ == "__main__":
    run_script(main)
