"""Benchmark: seconds per training step of GRASP, the weight-space methods and the baselines.

The packaged MiniLM-L6 on SST-2, batch 32, max length 64, on one torch device. Every arm is
prepared once; then rounds of ``--steps`` timed steps per arm (after ``--warmup`` untimed
ones), arms interleaved round by round so that a busier stretch of a shared machine does not
bias one arm, every arm drawing the same batches. Reports the median step per arm and its ratio
to LoRA's, as JSON and a table. On CUDA each timed step ends in a synchronisation.

    python benchmarks/step_time.py --data-dir ../shared/data/glue
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import torch

from imc_sim.atomic import write_text_atomic
from imc_sim.cli import OneLineParser, run_script
from imc_sim.cli.numbers import names_of, non_negative_int, positive_int
from imc_sim.table import format_table
from imc_sim.training.loop import Run, TrainArgs, prepare

ROOT = Path(__file__).resolve().parents[1]
K64 = {"k": 64, "rows": "rows"}
ARMS: dict[str, tuple[str, dict]] = {
    "grasp": ("grasp", {"k": 32}),
    "grasp-w weights": ("grasp-w", {**K64, "sampling": "weights"}),
    "grasp-w outputs": ("grasp-w", {**K64, "sampling": "outputs"}),
    "stochgrasp weights": ("stochgrasp", {**K64, "sampling": "weights"}),
    "stochgrasp outputs": ("stochgrasp", {**K64, "sampling": "outputs"}),
    "lora": ("lora", {"lora_r": 8, "targets": "query,value"}),
    "full": ("full", {}),
}


def timed_step(run: Run) -> float:
    start = time.perf_counter()
    run.step()
    if run.torch_device.type == "cuda":
        torch.cuda.synchronize(run.torch_device)
    return time.perf_counter() - start


def main() -> None:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="GLUE folder (default $IMC_SIM_DATA)")
    parser.add_argument("--arms", type=names_of(ARMS), default=tuple(ARMS), help="comma-separated arm names")
    parser.add_argument("--torch-device", default="auto")
    parser.add_argument("--mixed-precision", default="no")
    parser.add_argument("--warmup", type=non_negative_int, default=3, help="untimed steps per arm")
    parser.add_argument("--rounds", type=positive_int, default=4)
    parser.add_argument("--steps", type=positive_int, default=5, help="timed steps per arm and round")
    parser.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "step_time.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    names = args.arms
    runs = {}
    for name in names:
        method, options = ARMS[name]
        runs[name] = prepare(TrainArgs(
            method=method, data_dir=args.data_dir, train_limit=5000, batch_size=32, max_length=64,
            max_steps=args.warmup + args.rounds * args.steps, method_options=options,
            torch_device=args.torch_device, mixed_precision=args.mixed_precision))
        for _ in range(args.warmup):
            timed_step(runs[name])
    samples: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(args.rounds):
        for name, run in runs.items():
            samples[name] += [timed_step(run) for _ in range(args.steps)]
    median = {name: statistics.median(v) for name, v in samples.items()}
    lora = median.get("lora")
    device = str(next(iter(runs.values())).torch_device)
    result = {
        "device": device, "threads": torch.get_num_threads(),
        "mixed_precision": args.mixed_precision, "batch_size": 32, "max_length": 64,
        "timed_steps_per_arm": args.rounds * args.steps,
        "arms": {name: {"median_s_per_step": median[name], "samples": samples[name],
                        "ratio_to_lora": median[name] / lora if lora else None}
                 for name in names},
    }
    write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")
    print(format_table(
        ["arm", "s/step (median)", "/ LoRA", "min", "max"],
        [[name, f"{median[name]:.3f}", f"{median[name] / lora:.2f}" if lora else "-",
          f"{min(samples[name]):.3f}", f"{max(samples[name]):.3f}"] for name in names]))
    print(f"{device}, {torch.get_num_threads()} threads, {args.rounds * args.steps} timed steps "
          f"per arm; wrote {args.out}")


if __name__ == "__main__":
    run_script(main)
