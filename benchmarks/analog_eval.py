"""Benchmark: what one analog realization and a drift sweep cost, relative to digital evaluation.

On the packaged MiniLM-L6 fine-tuned with GRASP (K=32, 1,500 steps; trained once and cached as
experiments/drift_pcm.py's grasp-k32 arm, or --checkpoint), SST-2 dev (872 sentences, tokenized
and batched once), in one process:
- one digital evaluation and one analog realization on --device (program + drift to 1 d +
  evaluate, its parts timed apart), alternating, --repeats of each (median), so that a slower
  stretch of the machine hits both;
- a sweep of --seeds seeds x --times times (each seed programmed once, drifted through the times),
  against the median of the digital evaluations taken before and after it;
- one 384x384 layer on a batch of 128 x 64 tokens: nn.Linear, aihwkit's TorchInferenceTile and
  imc-sim's fused tile, same periphery (8-bit DAC/ADC, output noise).
Prints a table and writes --out (JSON).

    python benchmarks/analog_eval.py --data-dir ../shared/data/glue
"""

from __future__ import annotations  # noqa: I001 - imc_sim is imported first, out of order

import copy
import functools
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import imc_sim  # noqa: F401 - before transformers: its torchvision guard (imc_sim/torchvision_guard.py)
import torch
from aihwkit.exceptions import ConfigError
from aihwkit.simulator.tiles.inference_torch import TorchInferenceTile

from imc_sim.cli import OneLineParser, run_script
from imc_sim.cli.numbers import positive_int
from imc_sim import data
from imc_sim.atomic import check_outputs, write_text_atomic
from imc_sim.checkpoint import load_model
from imc_sim.crossbar import int8_product
from imc_sim.crossbar.mapping import deploy_model
from imc_sim.crossbar.rpu_config import build_rpu_config
from imc_sim.crossbar.tiles import CrossbarLinear
from imc_sim.deploy.chip import Chip
from imc_sim.deploy.range_source import set_input_ranges
from imc_sim.deploy.results import MappingSummary, TimePoint
from imc_sim.deploy.run import dev_set
from imc_sim.deploy.sweep import drift_sweep
from imc_sim.devices import build_family
from imc_sim.devices.profile import load_profile
from imc_sim.evaluate import evaluate
from imc_sim.table import format_table
from imc_sim.training.cache import train_cached
from imc_sim.training.loop import TrainArgs
from imc_sim.units import parse_times
from imc_sim.host import this_host

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CHECKPOINT = ROOT / "experiments" / "results" / "checkpoints" / "grasp-k32-full.pt"


def seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@torch.no_grad()
def layer_costs(profile_name: str, repeats: int) -> dict[str, float]:
    """ms per forward of one 384x384 layer on 128 x 64 tokens, three ways (aihwkit's tile left
    out where its torch tiles refuse the profile: IR drop)."""
    profile = load_profile(profile_name)
    torch.manual_seed(0)
    linear = torch.nn.Linear(384, 384)
    x = torch.randn(128 * 64, 384)
    fused = CrossbarLinear(linear, profile, build_family(profile))
    if fused.static_ranges:  # one DAC range per row tile, calibrated on these inputs
        fused.begin_calibration()
        fused(x)
        fused.end_calibration()
    runs = {"nn.Linear": lambda: linear(x), "imc-sim tile": lambda: fused(x)}
    try:
        tile = TorchInferenceTile(384, 384, rpu_config=build_rpu_config(profile))
    except ConfigError as error:
        print(f"aihwkit tile not timed: {error}")
    else:
        tile.set_weights(linear.weight.data)
        tile.eval()
        runs["aihwkit tile"] = lambda: tile(x) + linear.bias
    for fn in runs.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(repeats * 5):  # interleaved, so a busy moment hits all three
        for name, fn in runs.items():
            times[name].append(seconds(fn))
    return {name: 1e3 * min(t) for name, t in times.items()}


def main() -> None:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--device", default="pcm")
    parser.add_argument("--seeds", type=positive_int, default=10)
    parser.add_argument("--times", default="1s,1h,1d,1w,30d,1y,10y")
    parser.add_argument("--repeats", type=positive_int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "analog_eval.json")
    args = parser.parse_args()
    inputs = [(f"--checkpoint {args.checkpoint}", args.checkpoint)] if args.checkpoint else []
    check_outputs({"--out": args.out}, inputs)  # before the work: not a folder, not the checkpoint

    profile = load_profile(args.device)  # before any training
    times = parse_times(args.times)
    checkpoint = args.checkpoint or train_cached(DEFAULT_CHECKPOINT, TrainArgs(
        method="grasp", data_dir=args.data_dir, max_steps=1500, method_options={"k": 32}))
    loaded = load_model(checkpoint)
    batches, dev_examples = dev_set(loaded, data.DataSource(data_dir=args.data_dir), None)

    digital_model = copy.deepcopy(loaded.model)
    digital_metric = evaluate(digital_model, batches, loaded.task)
    deployment = deploy_model(loaded.model, profile)
    set_input_ranges(deployment, loaded, batches, what=str(checkpoint))  # static-range profiles
    host = this_host()
    print(host.describe())
    print(deployment.describe())
    parts: dict[str, list[float]] = {"program": [], "drift": [], "evaluate": []}
    digital_times: list[float] = []
    for seed in range(args.repeats):
        digital_times.append(seconds(lambda: evaluate(digital_model, batches, loaded.task)))
        chip = Chip(deployment, seed)
        parts["program"].append(seconds(chip.program))
        parts["drift"].append(seconds(functools.partial(chip.drift_to, 86400.0)))
        parts["evaluate"].append(seconds(lambda: evaluate(deployment.model, batches, loaded.task)))
    realization = statistics.median(sum(p) for p in zip(*parts.values(), strict=True))
    digital = statistics.median(digital_times)
    points: list[TimePoint] = []
    sweep = seconds(lambda: points.extend(drift_sweep(
        deployment, lambda: evaluate(deployment.model, batches, loaded.task),
        list(range(args.seeds)), times)))
    around_sweep = [digital, *(seconds(lambda: evaluate(digital_model, batches, loaded.task))
                               for _ in range(args.repeats))]
    digital_sweep = statistics.median(around_sweep)
    layers = layer_costs(args.device, args.repeats)

    n = args.seeds * len(times)
    rows = [
        ["digital evaluation (872)", f"{digital:.2f}", "1.00", ""],
        ["one realization (program + drift + evaluate)", f"{realization:.2f}",
         f"{realization / digital:.2f}", "<= 1.2"],
        *[[f"  of which {k}", f"{statistics.median(v):.2f}", f"{statistics.median(v) / digital:.2f}", ""]
          for k, v in parts.items()],
        [f"sweep {args.seeds} seeds x {len(times)} times ({n} realizations)", f"{sweep:.1f}",
         f"{sweep / digital_sweep:.1f}", "<= 70"],
        *[[f"384x384 layer, {k} (ms)", f"{v:.1f}", f"{v / layers['nn.Linear']:.2f} x Linear", ""]
          for k, v in layers.items()],
    ]
    print(format_table(["what", "seconds", "x digital", "target"], rows))
    result = {
        "checkpoint": str(checkpoint), "device": profile.name, "dev_examples": dev_examples,
        "threads": torch.get_num_threads(), "host": host.to_json(),
        "int8_limbs": None if int8_product.limbs() is None else int8_product.limbs().largest,
        "digital_metric": digital_metric,
        "digital_seconds": digital, "digital_seconds_around_sweep": digital_sweep,
        "realization_seconds": realization,
        "realization_parts_seconds": {k: statistics.median(v) for k, v in parts.items()},
        "sweep_seconds": sweep, "sweep_realizations": n, "layer_ms": layers,
        "ratios": {"realization": realization / digital, "sweep": sweep / digital_sweep},
        "mapping": MappingSummary.from_json(deployment.summary()).to_json(),
        "times": [p.to_json() for p in points],
    }
    write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    run_script(main)
