"""Benchmark: GRASP and baselines on SST-2 with the packaged MiniLM-L6 (issue 2's table).

Every arm: batch 32, max length 64, 1,500 steps, seed 0, its method's default learning rate.
Each arm writes its own JSON under --out-dir as it finishes (``--resume`` skips arms already
there), then one table: dev accuracy, trainable parameters (head excluded), parameters and
seconds per step relative to LoRA from the same run. Step times come from a separate timing pass
(--timing-steps per arm, arms interleaved over two rounds, identical batches for every arm), so
that a slower or busier stretch of the long training run does not bias one arm.

    python benchmarks/peft_sst2.py --data-dir ../shared/data/glue
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from imc_sim.atomic import write_text_atomic
from imc_sim.cli import OneLineParser, run_script
from imc_sim.cli.numbers import names_of, positive_int
from imc_sim.table import format_table
from imc_sim.training.loop import TrainArgs, count_params, prepare, train

ARMS: dict[str, tuple[str, dict]] = {
    "lora-r8-qv": ("lora", {"lora_r": 8, "targets": "query,value"}),
    "grasp-k32": ("grasp", {"k": 32}),
    "grasp-k128": ("grasp", {"k": 128}),
    "grasp-k8": ("grasp", {"k": 8}),
    "grasp-k128-kv-ff2": ("grasp", {"k": 128, "targets": "kv-ff2"}),
    "grasp-k128-ff2": ("grasp", {"k": 128, "targets": "ff2"}),
    "stochgrasp-k64-rows": ("stochgrasp", {"k": 64, "rows": "rows"}),
    "ia3": ("ia3", {}),
    "bitfit": ("bitfit", {}),
}


def arm_args(name: str, args: argparse.Namespace, **extra) -> TrainArgs:
    method, options = ARMS[name]
    return TrainArgs(method=method, data_dir=args.data_dir, max_steps=args.steps, batch_size=32,
                     max_length=64, seed=0, method_options=options, **extra)


def run_arm(name: str, args: argparse.Namespace) -> dict:
    return {"arm": name, **train(arm_args(name, args)).metrics}


def timing_pass(rows: list[dict], args: argparse.Namespace, rounds: int = 2) -> None:
    """Add each arm's median seconds per training step (arms interleaved round by round) and
    its parameter counts, measured on a freshly prepared run."""
    names = [r["arm"] for r in rows]
    samples: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(rounds):
        for row in rows:
            name = row["arm"]
            run = prepare(arm_args(name, args, train_limit=5000))
            row.update(count_params(run.model))
            for step in range(5 + args.timing_steps):
                start = time.perf_counter()
                run.step()
                if step >= 5:
                    samples[name].append(time.perf_counter() - start)
    for row in rows:
        v = samples[row["arm"]]
        row["timed_seconds_per_step"] = sorted(v)[len(v) // 2]


def table(rows: list[dict], markdown: bool) -> str:
    lora = next((r for r in rows if r["arm"].startswith("lora")), None)
    out = []
    for r in rows:
        rel_p = f"{r['trainable_params'] / lora['trainable_params']:.4f}" if lora else "-"
        t = r.get("timed_seconds_per_step", r["seconds_per_step"])
        t_lora = lora.get("timed_seconds_per_step", lora["seconds_per_step"]) if lora else None
        out.append([r["arm"], f"{100 * r['metric']:.2f}", r["trainable_params"], rel_p,
                    f"{t:.3f}", f"{t / t_lora:.2f}" if lora else "-", r["lr"]])
    return format_table(["arm", "dev acc %", "trainable (excl. head)", "params / LoRA",
                         "s/step", "time / LoRA", "lr"], out, markdown=markdown)


def main() -> None:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data/glue")
    parser.add_argument("--steps", type=positive_int, default=1500)
    parser.add_argument("--arms", type=names_of(ARMS), default=tuple(ARMS), help="comma-separated arm names")
    parser.add_argument("--out-dir", default="benchmarks/results/peft_sst2")
    parser.add_argument("--resume", action="store_true", help="skip arms with a JSON already")
    parser.add_argument("--threads", type=positive_int, default=2)
    parser.add_argument("--timing-steps", type=positive_int, default=40, help="timed steps per arm and round")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out_dir)
    rows = []
    for name in args.arms:
        path = out / f"{name}.json"
        if args.resume and path.exists():
            rows.append(json.loads(path.read_text()))
            continue
        row = run_arm(name, args)
        write_text_atomic(path, json.dumps(row, indent=2) + "\n")
        rows.append(row)
        print(table(rows, markdown=False), flush=True)
    timing_pass(rows, args)
    write_text_atomic(out.with_suffix(".json"), json.dumps(rows, indent=2) + "\n")
    print(table(rows, markdown=True))


if __name__ == "__main__":
    run_script(main)
