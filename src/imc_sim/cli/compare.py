"""``imc-sim compare``: several checkpoints on the same device and the same noise seeds."""

from __future__ import annotations

import argparse
import json

from imc_sim.cli.deploy import DEFAULT_TIMES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="compare checkpoints on one device under drift",
                       description=__doc__.splitlines()[0])
    p.add_argument("checkpoints", nargs="+", help="model.pt files of the same task and base model")
    p.add_argument("--device", default="pcm", help="shipped profile name or a YAML path")
    p.add_argument("--drift", nargs="+", default=[DEFAULT_TIMES], metavar="TIME",
                   help=f"times after programming (default {DEFAULT_TIMES})")
    p.add_argument("--seeds", type=int, default=10, help="programmed chips (noise seeds), default 10")
    p.add_argument("--data-dir", help="GLUE layout folder; default $IMC_SIM_DATA, else the datasets hub")
    p.add_argument("--eval-limit", type=int, help="evaluate on the first N dev examples")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--plot", help="write accuracy versus time here (PNG)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from imc_sim.analog.compare import check_comparable, compare_checkpoints, format_compare_table
    from imc_sim.analog.plots import plot_drift
    from imc_sim.analog.profile import load_profile
    from imc_sim.analog.units import parse_times
    from imc_sim.atomic import write_text_atomic
    from imc_sim.errors import ImcSimError

    profile = load_profile(args.device)
    times = parse_times(args.drift)
    profile.check_times(times)
    if args.seeds < 1:
        raise ImcSimError(f"--seeds must be at least 1, got {args.seeds}")
    check_comparable(args.checkpoints)
    result = compare_checkpoints(args.checkpoints, profile, times, args.seeds, args.data_dir,
                                 args.eval_limit, progress=not args.quiet)
    print(format_compare_table(result))
    if args.json:
        write_text_atomic(args.json, json.dumps(result, indent=2) + "\n")
    if args.plot:
        plot_drift(result["checkpoints"], args.plot, f"{result['task']} on {profile.name}",
                   result["metric_name"])
    written = [p for p in (args.json, args.plot) if p]
    if written:
        print("wrote " + " and ".join(written))
    return 0
