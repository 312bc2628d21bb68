"""GRASP where a chip would keep it: the adapter digital before the DAC versus merged into the weights.

1. One activation-space GRASP checkpoint (K=32) deployed twice on the same chips (seeds): merged
   (the tiles hold diag(1/gamma) W, the usual ``imc-sim deploy``) and in the periphery (the tiles
   hold the frozen base W, the scale and shift act on each layer's input before the DAC:
   ``imc-sim deploy --grasp-periphery``). Both deployments of a seed draw the same noise numbers
   per device (paired by chip); the table gives each arm and the paired difference per time.
2. A multi-task chip (``imc-sim multitask``): the base programmed once per seed, two adapters
   switched in at every time without reprogramming, each on its own dev set. It uses SST-2 and the
   first other GLUE task whose train and dev files are in --data-dir; with SST-2 alone, a second
   SST-2 adapter (K=16, seed 1) stands in for the second task, and the output says so.

Writes ``results/periphery_grasp-<tag>.json`` (compare schema) and ``...-multitask.json``
(:class:`~imc_sim.deploy.results.MultiTaskResult`), a PNG beside each, and two docs/results.md
sections.

    python experiments/periphery_grasp.py            # 300 steps, 5 chips, pcm at 1h, 1d, 1y
    python experiments/periphery_grasp.py --quick    # 80 steps, 2 chips, 200 dev examples, 1h and 1y

Cost: two trainings (cached), then 2 x seeds x times evaluations for the comparison and
tasks x seeds x times for the multi-task chip.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from common import RESULTS, common_parser, write_results_section

from imc_sim.cli import run_script  # noqa: E402
from imc_sim.data import DataSource
from imc_sim.data.glue import resolve_data_dir
from imc_sim.deploy.compare import format_compare_table
from imc_sim.deploy.multitask import format_multitask_table, multitask_sweep
from imc_sim.deploy.plots import plot_drift
from imc_sim.deploy.results import CompareResult, ExperimentTag, save_result
from imc_sim.deploy.run import deploy_checkpoint
from imc_sim.devices.profile import load_profile
from imc_sim.metrics import metric_format
from imc_sim.table import format_table
from imc_sim.tasks import TASKS
from imc_sim.training.cache import train_all_cached
from imc_sim.training.loop import TrainArgs
from imc_sim.units import parse_times


def other_task(data_dir: str) -> str | None:
    """The first GLUE task besides SST-2 whose train and dev files are in ``data_dir``."""
    root = resolve_data_dir(data_dir)
    for task in TASKS.values():
        folder = root / task.folder if root is not None and task.folder else None
        if task.name != "sst2" and folder and (folder / "train.tsv").is_file() and \
                (folder / task.dev_file).is_file():
            return task.name
    return None


def paired_table(result: CompareResult, markdown: bool) -> str:
    """Per time: each arm's mean, and periphery - merged per chip (mean +- std, chips where the
    periphery is at least as good)."""
    merged, periphery = result.by_name("merged"), result.by_name("periphery")
    fmt = metric_format(result.metric_name)
    rows = []
    for m, p in zip(merged.points, periphery.points, strict=True):
        diffs = [b - a for a, b in zip(m.metrics, p.metrics, strict=True)]
        mean = sum(diffs) / len(diffs)
        std = (sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1)) ** 0.5 if len(diffs) > 1 else 0.0
        better = sum(d >= 0 if fmt.higher_is_better else d <= 0 for d in diffs)
        rows.append([m.label, fmt(m.mean), fmt(p.mean), fmt.spread(mean, std, len(diffs)),
                     f"{better}/{len(diffs)}"])
    return format_table(["drift", "merged", "periphery", "periphery - merged (paired)",
                         "chips periphery >= merged"], rows, markdown)


def compare_arms(grasp: Path, args: argparse.Namespace, name: str) -> str:
    """The checkpoint merged and in the periphery on the same chips: JSON, PNG; returns the tables."""
    profile, times = load_profile(args.device), parse_times(args.drift)
    arms = [deploy_checkpoint(grasp, profile, times, args.seeds, eval_limit=args.eval_limit, name=arm,
                              source=DataSource(data_dir=args.data_dir), progress=False,
                              grasp_periphery=arm == "periphery")
            for arm in ("merged", "periphery")]
    result = CompareResult(profile.name, args.seeds, arms[0].task, arms[0].metric_name,
                           tuple(a.curve for a in arms), ExperimentTag(name, args.quick, args.steps))
    save_result(RESULTS / f"{name}.json", result)
    plot_drift(result.checkpoints, RESULTS / f"{name}.png", f"GRASP K=32 merged vs periphery on "
               f"{profile.name} ({args.seeds} chips)", result.metric_name)
    return format_compare_table(result, markdown=True) + "\n\n" + paired_table(result, markdown=True)


def multitask_demo(paths: list[Path], note: str, args: argparse.Namespace, name: str) -> str:
    """``paths`` on one chip per seed: JSON, PNG; returns the note and the table."""
    profile = load_profile(args.device)
    multi = multitask_sweep(paths, profile, parse_times(args.drift), args.seeds,
                            DataSource(data_dir=args.data_dir), args.eval_limit, progress=False)
    save_result(RESULTS / f"{name}.json", multi)
    metrics = {t.metric_name for t in multi.tasks}
    plot_drift([t.curve for t in multi.tasks], RESULTS / f"{name}.png",
               f"one {profile.name} chip, {len(multi.tasks)} adapters ({args.seeds} chips)",
               metrics.pop() if len(metrics) == 1 else "task metric")
    return note + "\n\n" + format_multitask_table(multi, markdown=True)


def main() -> None:
    parser = common_parser(__doc__.splitlines()[0])
    parser.set_defaults(steps=300, seeds=5)
    parser.add_argument("--device", default="pcm")
    parser.add_argument("--drift", nargs="+", default=["1h,1d,1y"], metavar="TIME")
    parser.add_argument("--no-docs", action="store_true", help="leave docs/results.md alone")
    args = parser.parse_args()
    tag = "quick" if args.quick else "full"
    if args.quick:
        args.steps, args.seeds, args.eval_limit, args.drift = min(args.steps, 80), min(args.seeds, 2), 200, \
            ["1h,1y"]
        print(f"--quick: {args.steps} steps, {args.seeds} chips, 200 dev examples, 1h and 1y; "
              "not the protocol")
    load_profile(args.device)  # the device and times checked before any training
    parse_times(args.drift)
    base = TrainArgs(data_dir=args.data_dir, model=args.model, max_steps=args.steps,
                     eval_limit=args.eval_limit)
    second = other_task(args.data_dir)
    if second:
        note = f"Two tasks: SST-2 and {second}, one adapter (K=32) each."
        other = (f"grasp-k32-{second}-s{args.steps}-{tag}", dataclasses.replace(
            base, task=second, method_options={"k": 32}))
    else:
        note = ("Only SST-2 is in the data folder: the second 'task' is a second SST-2 adapter "
                "(K=16, training seed 1), not another task.")
        other = (f"grasp-k16-seed1-s{args.steps}-{tag}", dataclasses.replace(
            base, seed=1, method_options={"k": 16}))
    runs = [(RESULTS / "checkpoints" / f"{stem}.pt", train_args) for stem, train_args in (
        (f"grasp-k32-s{args.steps}-{tag}", dataclasses.replace(base, method_options={"k": 32})), other)]
    grasp, other_path = train_all_cached(runs, args.fresh)
    name = f"periphery_grasp-{tag}"
    table = compare_arms(grasp, args, name)
    print(table)
    multi_table = multitask_demo([grasp, other_path], note, args, f"{name}-multitask")
    print(multi_table)
    if not args.no_docs:
        command = "python experiments/periphery_grasp.py " + " ".join(sys.argv[1:])
        write_results_section(name, command, table)
        write_results_section(f"{name}-multitask", command, multi_table)
    print(f"wrote {RESULTS / name}.json, {name}-multitask.json and their PNGs")


if __name__ == "__main__":
    run_script(main)
