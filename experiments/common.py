"""Shared pieces of the experiment scripts: cached training runs, compare on a device, result files.

Every script writes ``experiments/results/<name>.json`` (``imc-sim compare``'s schema,
:mod:`imc_sim.deploy.results`; fig6_gaussian's own), a PNG beside it, and its markdown table
into ``docs/results.md`` between ``<!-- <name> -->`` markers (replacing the previous table of the
same name).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
from pathlib import Path

from imc_sim.atomic import write_text_atomic
from imc_sim.deploy.compare import compare_checkpoints, format_compare_table
from imc_sim.deploy.plots import plot_drift
from imc_sim.deploy.results import CompareResult, ExperimentTag, save_result
from imc_sim.devices.profile import load_profile
from imc_sim.training.loop import TrainArgs, train_cached
from imc_sim.units import parse_times

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results"
RESULTS_MD = ROOT / "docs" / "results.md"


def common_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data-dir", default="../shared/data/glue")
    parser.add_argument("--model", help="base model (default: the packaged MiniLM-L6)")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--eval-limit", type=int)
    parser.add_argument("--quick", action="store_true",
                        help="300 steps, 3 seeds, 300 dev examples: a smoke run, not the protocol")
    parser.add_argument("--fresh", action="store_true", help="retrain even if a checkpoint exists")
    return parser


def apply_quick(args: argparse.Namespace) -> str:
    """Shrink the run for --quick (and say so); returns the tag of the result files."""
    if not args.quick:
        return "full"
    args.steps, args.seeds, args.eval_limit = min(args.steps, 300), min(args.seeds, 3), 300
    print(f"--quick: {args.steps} training steps, {args.seeds} seeds, 300 dev examples; "
          "not the full protocol")
    return "quick"


def trained_checkpoint(name: str, args: TrainArgs, fresh: bool = False) -> Path:
    """Train ``args`` once and keep ``results/checkpoints/<name>.pt``; reuse it afterwards."""
    return train_cached(RESULTS / "checkpoints" / f"{name}.pt", args, fresh)


def train_arms(arms: dict[str, dict], args: argparse.Namespace, tag: str) -> list[Path]:
    """One cached checkpoint per arm: ``{name: TrainArgs fields}`` on the script's settings."""
    paths = []
    for name, fields in arms.items():
        train_args = TrainArgs(data_dir=args.data_dir, model=args.model, max_steps=args.steps,
                               eval_limit=args.eval_limit, **fields)
        paths.append(trained_checkpoint(f"{name}-{tag}", train_args, args.fresh))
    return paths


def write_json(name: str, payload: dict) -> Path:
    """``results/<name>.json`` for a result outside the compare schema (fig6_gaussian's)."""
    path = RESULTS / f"{name}.json"
    write_text_atomic(path, json.dumps(payload, indent=2) + "\n")
    return path


def write_results_section(name: str, command: str, table: str) -> None:
    """Heading, command, table and PNG of ``name`` between ``<!-- name -->`` and ``<!-- /name -->``
    in docs/results.md (replacing an earlier version)."""
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    text = f"### {name}\n\n`{command}`\n\n{table}\n\n![{name}](../experiments/results/{name}.png)"
    block = f"{start}\n{text}\n{end}"
    current = RESULTS_MD.read_text(encoding="utf-8") if RESULTS_MD.exists() else "# Results\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    updated = pattern.sub(lambda _: block, current) if pattern.search(current) else \
        current.rstrip() + "\n\n" + block + "\n"
    write_text_atomic(RESULTS_MD, updated)


def compare_on_device(name: str, paths: list[Path], device: str, times: str,
                      args: argparse.Namespace, command: str) -> CompareResult:
    """``imc-sim compare`` of ``paths`` on ``device``: JSON, PNG and a docs/results.md section."""
    profile = load_profile(device)
    result = compare_checkpoints(paths, profile, parse_times(times), args.seeds, args.data_dir,
                                 args.eval_limit)
    result = dataclasses.replace(result, experiment=ExperimentTag(name, args.quick, args.steps))
    save_result(RESULTS / f"{name}.json", result)
    plot_drift(result.checkpoints, RESULTS / f"{name}.png",
               f"{result.task} on {device} ({args.steps} steps, {args.seeds} seeds)", result.metric_name)
    table = format_compare_table(result, markdown=True)
    print(table)
    write_results_section(name, command, table)
    return result
