"""Shared pieces of the experiment scripts: cached training runs, compare on a device, result files.

Training grids (``--train-seeds``, ``--ray``): every arm trained for seeds 0..N-1 by the training
jobs of :mod:`imc_sim.training.jobs`, and every checkpoint deployed on the same chips by a sweep
(:mod:`imc_sim.deploy.executors`: a plan under ``results/sweeps/`` and its resumable store
beside it), in this process or on a local Ray.

Checkpoints are cached in ``results/checkpoints/`` under the arm's name and reused only when they
were trained with the same settings (:mod:`imc_sim.training.cache`: ``--model``, ``--steps``, the
data, the arm's fields); a cached file of other settings stops the run before any training, with
the settings that differ (``--fresh`` retrains it).

Every script writes ``experiments/results/<name>.json`` (``imc-sim compare``'s schema,
:mod:`imc_sim.deploy.results`; fig6_gaussian's own), a PNG beside it, and its markdown table
into ``docs/results.md`` between ``<!-- <name> -->`` markers (replacing the previous table of the
same name).
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from imc_sim.atomic import write_json_atomic, write_text_atomic
from imc_sim.cli import OneLineParser
from imc_sim.cli.numbers import positive_int
from imc_sim.deploy.compare import compare_checkpoints, format_compare_table
from imc_sim.deploy.executors import Executor, InProcessExecutor, RayExecutor, run_sweep
from imc_sim.deploy.plan import load_plan
from imc_sim.deploy.plots import plot_drift
from imc_sim.deploy.results import CheckpointCurve, CompareResult, ExperimentTag, TimePoint, save_result
from imc_sim.deploy.store import read_store, summarize_store
from imc_sim.devices.profile import load_profile
from imc_sim.documents import read_json_object
from imc_sim.errors import ImcSimError
from imc_sim.jobs import InProcessRunner, JobRunner, RayRunner
from imc_sim.table import format_table
from imc_sim.training.cache import train_all_cached
from imc_sim.training.jobs import TrainJob, run_training
from imc_sim.training.loop import TrainArgs
from imc_sim.units import parse_times

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results"
RESULTS_MD = ROOT / "docs" / "results.md"


def common_parser(description: str) -> argparse.ArgumentParser:
    """The options every training experiment takes; usage errors are one line (exit 2)."""
    parser = OneLineParser(description=description)
    parser.add_argument("--data-dir", default="../shared/data/glue")
    parser.add_argument("--model", help="base model (default: the packaged MiniLM-L6)")
    parser.add_argument("--steps", type=positive_int, default=1500)
    parser.add_argument("--seeds", type=positive_int, default=10)
    parser.add_argument("--eval-limit", type=positive_int)
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


def train_arms(arms: dict[str, dict], args: argparse.Namespace, tag: str) -> list[Path]:
    """One cached checkpoint per arm: ``{name: TrainArgs fields}`` on the script's settings (every
    cached one checked against them before any training)."""
    runs = [(RESULTS / "checkpoints" / f"{name}-{tag}.pt",
             TrainArgs(data_dir=args.data_dir, model=args.model, max_steps=args.steps,
                       eval_limit=args.eval_limit, **fields)) for name, fields in arms.items()]
    return train_all_cached(runs, args.fresh)


def read_json(path: Path, producer: str) -> dict:
    """The JSON object another script wrote at ``path`` (``producer``: that script's name); one-line
    error when it is missing or malformed."""
    if not path.exists():
        raise ImcSimError(f"{path} not found: run experiments/{producer}.py first")
    return read_json_object(path, f"a result of experiments/{producer}.py")


@contextmanager
def fields_of(path: Path, producer: str) -> Iterator[None]:
    """Reading fields of ``producer``'s result at ``path``: a missing or mistyped one is a
    one-line error naming the file (not a KeyError or TypeError)."""
    try:
        yield
    except (KeyError, TypeError, IndexError, ValueError) as exc:
        raise ImcSimError(f"{path} is not a result of experiments/{producer}.py "
                          f"({type(exc).__name__}: {exc})") from None


def write_json(name: str, payload: dict) -> Path:
    """``results/<name>.json`` for a result outside the compare schema (fig6_gaussian's)."""
    path = RESULTS / f"{name}.json"
    write_json_atomic(path, payload)
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


def publish_rows(name: str, payload: dict, header: list[str], rows: list[list[str]], note: str = "") -> None:
    """A result outside the compare schema: ``payload`` as ``results/<name>.json``, ``rows`` as a
    markdown table (``note`` below it) on stdout and in docs/results.md with this script's command
    line; the script draws its own PNG."""
    write_json(name, payload)
    table = format_table(header, rows, markdown=True) + note
    print(table)
    command = f"python experiments/{Path(sys.argv[0]).stem}.py " + " ".join(sys.argv[1:])
    write_results_section(name, command.rstrip(), table)


def publish(name: str, result: CompareResult, command: str, title: str, extra: str = "") -> None:
    """PNG of ``result``, its table on stdout and in docs/results.md (``extra`` below the table)."""
    plot_drift(result.checkpoints, RESULTS / f"{name}.png", title, result.metric_name)
    table = format_compare_table(result, markdown=True)
    print(table)
    write_results_section(name, command, table + (f"\n\n{extra}" if extra else ""))


def compare_on_device(name: str, paths: list[Path], device: str, times: str,
                      args: argparse.Namespace, command: str) -> CompareResult:
    """``imc-sim compare`` of ``paths`` on ``device``: JSON, PNG and a docs/results.md section."""
    profile = load_profile(device)
    result = compare_checkpoints(paths, profile, parse_times(times), args.seeds, args.data_dir,
                                 args.eval_limit)
    result = dataclasses.replace(result, experiment=ExperimentTag(name, args.quick, args.steps))
    save_result(RESULTS / f"{name}.json", result)
    publish(name, result, command, f"{result.task} on {device} ({args.steps} steps, {args.seeds} seeds)")
    return result


# --- training seeds x chips -----------------------------------------------------------------------

def add_grid_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--train-seeds", type=positive_int, default=3,
                        help="train every arm with seeds 0..N-1 (default 3)")
    parser.add_argument("--ray", action="store_true", help="train and deploy as tasks on a local Ray")


@dataclass(frozen=True)
class ArmCheckpoint:
    """One trained checkpoint of the grid: its arm, training seed and file."""

    arm: str
    seed: int
    path: Path


def checkpoint_name(arm: str, seed: int, tag: str) -> str:
    """``{arm}-s{seed}-{tag}``; seed 0 keeps the name of the single-seed runs, ``{arm}-{tag}``, so
    their cached checkpoints are reused."""
    return f"{arm}-{tag}" if seed == 0 else f"{arm}-s{seed}-{tag}"


def absolute(path: str | None) -> str | None:
    """A local file or folder as an absolute path; anything else (None, a hub name) as it is."""
    return str(Path(path).resolve()) if path and Path(path).exists() else path


def train_arm_seeds(arms: dict[str, dict], args: argparse.Namespace, tag: str,
                    runner: JobRunner) -> list[ArmCheckpoint]:
    """Every arm (``{name: TrainArgs fields}``) for training seeds 0..args.train_seeds-1, each
    checkpoint cached in ``results/checkpoints/``; arm-major, then seed."""
    grid = [ArmCheckpoint(arm, seed, RESULTS / "checkpoints" / f"{checkpoint_name(arm, seed, tag)}.pt")
            for arm in arms for seed in range(args.train_seeds)]
    data_dir, model = absolute(args.data_dir), absolute(args.model)  # as Ray workers must read them
    jobs = [TrainJob(c.path.stem, TrainArgs(data_dir=data_dir, model=model, max_steps=args.steps,
                                            eval_limit=args.eval_limit, seed=c.seed, **arms[c.arm]), c.path)
            for c in grid]
    done = run_training(jobs, runner, args.fresh)
    print(f"{done.planned} checkpoints: {done.found} cached, {done.ran} trained now")
    return grid


def grid_runners(args: argparse.Namespace) -> tuple[JobRunner, Executor]:
    """Where training jobs and sweep units run: both in this process, or both on one local Ray
    (enter the runner first: the executor then uses the Ray it started)."""
    if args.ray:
        return RayRunner(), RayExecutor()
    return InProcessRunner(), InProcessExecutor()


def sweep_on_device(name: str, grid: list[ArmCheckpoint], device: str, times: str,
                    args: argparse.Namespace, executor: Executor) -> CompareResult:
    """Every checkpoint of ``grid`` on ``device`` with chips 0..args.seeds-1 (the same chips for
    each), as a sweep whose store ``results/sweeps/<name>.results.jsonl`` keeps finished units; the
    result (one curve per checkpoint, per-chip metrics) saved as ``results/<name>.json``."""
    plan = {"checkpoints": [str(c.path.resolve()) for c in grid], "devices": [device],
            "seeds": args.seeds, "times": times, "data_dir": str(Path(args.data_dir).resolve())}
    if args.eval_limit is not None:
        plan["eval_limit"] = args.eval_limit
    plan_path = RESULTS / "sweeps" / f"{name}.plan.yaml"
    write_text_atomic(plan_path, yaml.safe_dump(plan, sort_keys=False))
    store = plan_path.with_suffix("").with_suffix(".results.jsonl")
    loaded = load_plan(plan_path)
    run_sweep(loaded, store, executor)
    (result,) = summarize_store(loaded, read_store(store))
    result = dataclasses.replace(result, experiment=ExperimentTag(name, args.quick, args.steps))
    save_result(RESULTS / f"{name}.json", result)
    return result


def by_arm(result: CompareResult, grid: list[ArmCheckpoint]) -> dict[str, dict[int, CheckpointCurve]]:
    """The curves of ``result`` as ``{arm: {training seed: curve}}``."""
    of_name = {c.path.stem: c for c in grid}
    arms: dict[str, dict[int, CheckpointCurve]] = {}
    for curve in result.checkpoints:
        c = of_name[curve.name]
        arms.setdefault(c.arm, {})[c.seed] = curve
    return arms


def pool_training_seeds(result: CompareResult, grid: list[ArmCheckpoint]) -> CompareResult:
    """One curve per arm whose points hold every (training seed, chip) metric, seed-major, and
    whose digital metric is the mean over seeds: the table's and plot's mean +- std over both."""
    curves = []
    for arm, seeds in by_arm(result, grid).items():
        cs = [seeds[s] for s in sorted(seeds)]
        points = tuple(TimePoint.of(p.t_seconds, [m for c in cs for m in c.points[i].metrics])
                       for i, p in enumerate(cs[0].points))
        curves.append(CheckpointCurve(arm, f"{len(cs)} training seeds", cs[0].method, cs[0].device_trained,
                                      sum(c.digital_metric for c in cs) / len(cs), points))
    return dataclasses.replace(result, checkpoints=tuple(curves))
