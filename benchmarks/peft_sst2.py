"""Benchmark: GRASP and baselines on SST-2 with the packaged MiniLM-L6 (issue 2's table).

Every arm: batch 32, max length 64, 1,500 steps, seed 0, its method's default learning rate.
Each arm writes its own JSON under --out-dir as it finishes (``--resume`` skips arms already
there), then one table: dev accuracy, trainable parameters (head excluded), parameters and
seconds per step relative to LoRA from the same run.

    python benchmarks/peft_sst2.py --data-dir ../shared/data/glue
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from imc_sim.atomic import write_text_atomic
from imc_sim.table import format_table
from imc_sim.train import TrainArgs, train

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


def run_arm(name: str, args: argparse.Namespace) -> dict:
    method, options = ARMS[name]
    result = train(TrainArgs(method=method, data_dir=args.data_dir, max_steps=args.steps,
                             batch_size=32, max_length=64, seed=0, method_options=options))
    return {"arm": name, **result.metrics}


def table(rows: list[dict], markdown: bool) -> str:
    lora = next((r for r in rows if r["arm"].startswith("lora")), None)
    out = []
    for r in rows:
        rel_p = f"{r['trainable_params'] / lora['trainable_params']:.4f}" if lora else "-"
        rel_t = f"{r['seconds_per_step'] / lora['seconds_per_step']:.2f}" if lora else "-"
        out.append([r["arm"], f"{100 * r['metric']:.2f}", r["trainable_params"], rel_p,
                    f"{r['seconds_per_step']:.3f}", rel_t, r["lr"]])
    return format_table(["arm", "dev acc %", "trainable (excl. head)", "params / LoRA",
                         "s/step", "time / LoRA", "lr"], out, markdown=markdown)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data/glue")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--arms", default=",".join(ARMS), help="comma-separated arm names")
    parser.add_argument("--out-dir", default="benchmarks/results/peft_sst2")
    parser.add_argument("--resume", action="store_true", help="skip arms with a JSON already")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out_dir)
    rows = []
    for name in args.arms.split(","):
        path = out / f"{name}.json"
        if args.resume and path.exists():
            rows.append(json.loads(path.read_text()))
            continue
        row = run_arm(name, args)
        write_text_atomic(path, json.dumps(row, indent=2) + "\n")
        rows.append(row)
        print(table(rows, markdown=False), flush=True)
    write_text_atomic(out.with_suffix(".json"), json.dumps(rows, indent=2) + "\n")
    print(table(rows, markdown=True))


if __name__ == "__main__":
    main()
