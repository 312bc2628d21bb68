"""``imc-sim sweep``: run a plan of checkpoints x devices x chips into a resumable results store."""

from __future__ import annotations

import argparse
from dataclasses import replace

DEFAULT_RETRIES = 3
"""Ray retries of a unit whose worker died, unless ``--max-retries`` says otherwise."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="run a sweep plan (YAML) in this process or on Ray, resumably",
                       description=__doc__.splitlines()[0])
    p.add_argument("plan", help="plan YAML: checkpoints, devices, seeds, times (see imc_sim.deploy.plan)")
    p.add_argument("--store", help="results store (JSON lines); default PLAN.results.jsonl beside the plan")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--ray", action="store_true", help="run each unit as a task on a local Ray")
    where.add_argument("--ray-address", metavar="ADDRESS", help="run on the Ray cluster at ADDRESS")
    p.add_argument("--max-retries", type=int, help=f"Ray retries of a unit whose worker died (default "
                   f"{DEFAULT_RETRIES})")
    p.add_argument("--json", help="write the summary here")
    p.add_argument("--plot", help="write the metric (accuracy, perplexity, ...) versus time here (.png, "
                   ".pdf or .svg)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from imc_sim import __version__
    from imc_sim.atomic import write_json_atomic
    from imc_sim.cli.outputs import check_output_paths
    from imc_sim.deploy.compare import format_compare_table
    from imc_sim.deploy.executors import InProcessExecutor, RayExecutor, run_sweep
    from imc_sim.deploy.plan import load_plan
    from imc_sim.deploy.plots import plot_drift
    from imc_sim.deploy.store import read_store, summarize_store
    from imc_sim.errors import ImcSimError

    on_ray = args.ray or args.ray_address
    if args.max_retries is not None and not on_ray:
        raise ImcSimError("--max-retries applies to a sweep on Ray (--ray, --ray-address)")
    retries = DEFAULT_RETRIES if args.max_retries is None else args.max_retries
    if retries < 0:
        raise ImcSimError(f"--max-retries must be at least 0, got {retries}")
    plan = load_plan(args.plan)
    store = args.store or str(plan.path.with_suffix(".results.jsonl"))
    check_output_paths(args, {"--store": store, "--json": args.json, "--plot": args.plot},
                       [c.path for c in plan.checkpoints])
    executor = (RayExecutor(args.ray_address, retries, progress=not args.quiet)
                if on_ray else InProcessExecutor(progress=not args.quiet))
    done = run_sweep(plan, store, executor)
    print(f"{done.planned} units: {done.found} already in {store}, {done.ran} run now")
    results = summarize_store(plan, read_store(store))
    for result in results:
        print(f"\n{result.task} on {result.device} ({result.seeds} seeds)")
        print(format_compare_table(result))
    several = len(results) > 1
    curves = [replace(c, name=f"{c.name} on {r.device}") if several else c
              for r in results for c in r.checkpoints]
    if args.json:
        summary = {"plan": str(plan.path), "store": store, "imc_sim_version": __version__,
                   "metric_name": results[0].metric_name, "devices": [r.to_json() for r in results]}
        write_json_atomic(args.json, summary)
    if args.plot:
        plot_drift(curves, args.plot, f"{results[0].task}: sweep {plan.path.stem}", results[0].metric_name)
    written = [p for p in (args.json, args.plot) if p]
    if written:
        print("wrote " + " and ".join(written))
    return 0
