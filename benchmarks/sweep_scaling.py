"""Benchmark: a sweep of >= 16 units on the packaged MiniLM, serial and on a local Ray with k workers.

A plan of one checkpoint (--checkpoint, else a GRASP K=32 checkpoint of the packaged MiniLM trained
for --train-steps steps and cached under benchmarks/results/sweep_scaling/) on --devices, with
--seeds chips each (units = devices x seeds), drifted through --times, each unit on one CPU thread:
- serial: the in-process executor, one unit after another;
- Ray with k = each of --workers local workers (``ray.init(num_cpus=k)``, started outside the timing);
  each run starts from an empty store, so every unit runs;
- Ray's overhead per unit: worker time not spent inside units, (k x wall - sum of unit times) / units,
  against the mean unit time (targets: throughput with k workers >= 0.8 k x serial; overhead <= 5 %).
Every run must store the same metrics as the serial one. Prints a table and writes --out (JSON).

    python benchmarks/sweep_scaling.py --data-dir ../shared/data/glue --workers 1 2
    python benchmarks/sweep_scaling.py --data-dir ../shared/data/glue --eval-limit 64 --seeds 8 \\
        --train-steps 2 --out /tmp/sweep_scaling.json      # a quick check that it works
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
import yaml

from imc_sim.atomic import check_outputs, write_text_atomic
from imc_sim.cli import OneLineParser, run_script
from imc_sim.cli.numbers import positive_int
from imc_sim.deploy.executors import Executor, InProcessExecutor, RayExecutor, run_sweep
from imc_sim.deploy.plan import SweepPlan, load_plan
from imc_sim.deploy.store import Record, read_store
from imc_sim.devices.profile import load_profile
from imc_sim.table import format_table
from imc_sim.training.cache import train_cached
from imc_sim.training.loop import TrainArgs
from imc_sim.units import parse_times

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / "results" / "sweep_scaling"


def timed_sweep(plan: SweepPlan, store: Path, executor: Executor) -> tuple[float, list[Record]]:
    """Wall seconds of a sweep into an empty ``store``, and what it stored."""
    start = time.perf_counter()
    run_sweep(plan, store, executor)
    return time.perf_counter() - start, read_store(store)


def row(label: str, workers: int, wall: float, records: list[Record], serial: float | None) -> dict:
    units = {r.unit: r.unit_seconds for r in records}
    busy = sum(units.values())
    overhead = (workers * wall - busy) / len(units)
    return {"executor": label, "workers": workers, "wall_seconds": wall, "units": len(units),
            "mean_unit_seconds": statistics.mean(units.values()), "overhead_per_unit_seconds": overhead,
            "overhead_fraction": overhead / statistics.mean(units.values()),
            "speedup": None if serial is None else serial / wall}


def table_row(r: dict) -> list[object]:
    ray = r["speedup"] is not None
    return [r["executor"], r["workers"], f"{r['wall_seconds']:.1f}", r["units"],
            f"{r['mean_unit_seconds']:.2f}", f"{r['overhead_per_unit_seconds']:.2f}",
            f"{100 * r['overhead_fraction']:.1f}%", f"{r['speedup']:.2f}" if ray else "",
            f"speedup >= {0.8 * r['workers']:.1f}, overhead <= 5%" if ray else ""]


def main() -> None:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("IMC_SIM_DATA"))
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--train-steps", type=positive_int, default=200)
    parser.add_argument("--devices", nargs="+", default=["pcm"])
    parser.add_argument("--seeds", type=positive_int, default=16)
    parser.add_argument("--times", default="1s,1d,1y")
    parser.add_argument("--eval-limit", type=positive_int)
    parser.add_argument("--workers", type=positive_int, nargs="+", default=[1, os.cpu_count() or 1])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "sweep_scaling.json")
    args = parser.parse_args()
    inputs = [(f"--checkpoint {args.checkpoint}", args.checkpoint)] if args.checkpoint else []
    check_outputs({"--out": args.out}, inputs)  # before the work: not a folder, not the checkpoint
    for device in args.devices:  # the profiles and times too
        load_profile(device)
    parse_times(args.times)
    # absolute, as the plan (written in a temporary folder) must name it
    data_dir = str(Path(args.data_dir).resolve()) if args.data_dir else None

    checkpoint = args.checkpoint or train_cached(CACHE / f"grasp-k32-{args.train_steps}steps.pt", TrainArgs(
        method="grasp", data_dir=data_dir, max_steps=args.train_steps, method_options={"k": 32}))
    import ray

    with tempfile.TemporaryDirectory(prefix="sweep-scaling-") as tmp:
        plan_file = Path(tmp) / "plan.yaml"
        plan_file.write_text(yaml.safe_dump({
            "checkpoints": [str(Path(checkpoint).resolve())], "devices": args.devices,
            "seeds": args.seeds, "times": args.times, "data_dir": data_dir,
            "eval_limit": args.eval_limit, "resources": {"cpus": 1}}))
        plan = load_plan(plan_file)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # one thread, as each Ray worker has (Ray sets OMP_NUM_THREADS=1)
        try:
            serial, reference = timed_sweep(plan, Path(tmp) / "serial.jsonl",
                                            InProcessExecutor(progress=False))
        finally:
            torch.set_num_threads(threads)
        rows = [row("in-process", 1, serial, reference, None)]
        expected = {(r.unit, r.t_seconds): r.metric for r in reference}
        for k in args.workers:
            start = time.perf_counter()
            ray.init(num_cpus=k, include_dashboard=False, log_to_driver=False)
            ray_init = time.perf_counter() - start
            try:
                wall, records = timed_sweep(plan, Path(tmp) / f"ray{k}.jsonl", RayExecutor(progress=False))
            finally:
                ray.shutdown()
            if {(r.unit, r.t_seconds): r.metric for r in records} != expected:
                raise SystemExit(f"Ray with {k} workers stored other metrics than the serial run")
            rows.append({**row("ray", k, wall, records, serial), "ray_init_seconds": ray_init})

    print(format_table(["executor", "workers", "wall (s)", "units", "unit (s)", "overhead/unit (s)",
                        "overhead", "speedup", "target"], [table_row(r) for r in rows]))
    result = {"checkpoint": str(checkpoint), "devices": args.devices, "seeds": args.seeds,
              "times": args.times, "eval_limit": args.eval_limit, "cpu_count": os.cpu_count(),
              "same_metrics_everywhere": True, "runs": rows}
    write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    run_script(main)
