"""Benchmark: the step time of device-aware training relative to plain training.

Packaged MiniLM-L6, SST-2, batch 32, max length 64. For each method, a plain run and a run with
--device (--drift) are prepared; --steps timed steps of each (after 5 warm-up steps) are taken in
interleaved rounds, and the median step times compared (target: at most 1.5x).

    python benchmarks/device_training.py --data-dir ../shared/data/glue
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

from imc_sim.atomic import write_text_atomic
from imc_sim.cli import OneLineParser, run_script
from imc_sim.cli.numbers import positive_int
from imc_sim.devices.profile import load_profile
from imc_sim.table import format_table
from imc_sim.training.loop import TrainArgs, prepare
from imc_sim.units import parse_time_range

ROOT = Path(__file__).resolve().parents[1]
METHODS = {
    "stochgrasp": {"k": 64, "rows": "rows"},
    "grasp": {"k": 32},
    "lora": {"lora_r": 8, "targets": "query,value"},
}


def main() -> None:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--device", default="pcm")
    parser.add_argument("--drift", default="1h..1y")
    parser.add_argument("--steps", type=positive_int, default=20)
    parser.add_argument("--rounds", type=positive_int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "device_training.json")
    args = parser.parse_args()
    load_profile(args.device)  # before any model is prepared
    parse_time_range(args.drift)

    runs = {}
    for method, options in METHODS.items():
        for device in (None, args.device):
            runs[(method, device)] = prepare(TrainArgs(
                method=method, data_dir=args.data_dir, train_limit=5000, method_options=options,
                device=device, drift=args.drift if device else None))
    samples: dict[tuple, list[float]] = {key: [] for key in runs}
    for _ in range(args.rounds):
        for key, run in runs.items():
            for step in range(5 + args.steps):
                start = time.perf_counter()
                run.step()
                if step >= 5:
                    samples[key].append(time.perf_counter() - start)
    rows, result = [], {}
    for method in METHODS:
        plain = statistics.median(samples[(method, None)])
        device = statistics.median(samples[(method, args.device)])
        rows.append([method, f"{plain:.3f}", f"{device:.3f}", f"{device / plain:.2f}", "<= 1.5"])
        result[method] = {"plain_s_per_step": plain, "device_s_per_step": device, "ratio": device / plain}
    print(format_table(["method", "plain s/step", f"{args.device} @ {args.drift} s/step", "ratio",
                        "target"], rows))
    write_text_atomic(args.out, json.dumps({"device": args.device, "drift": args.drift,
                                            "steps": args.steps, "rounds": args.rounds,
                                            "methods": result}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    run_script(main)
