"""``imc-sim deploy``: program a checkpoint onto simulated NVM tiles and measure it under drift."""

from __future__ import annotations

import argparse
import json

DEFAULT_TIMES = "1s,1h,1d,1w,30d,1y,10y"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("deploy", help="evaluate a checkpoint on a device profile under drift",
                       description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", help="model.pt written by imc-sim train")
    p.add_argument("--device", default="pcm", help="shipped profile name (imc-sim devices) or a YAML path")
    p.add_argument("--drift", nargs="+", default=[DEFAULT_TIMES], metavar="TIME",
                   help="times after programming: 1s 90s 1h 1d 1w 30d 1mo 1y 10y 3600 "
                   f"(default {DEFAULT_TIMES})")
    p.add_argument("--seeds", type=int, default=10, help="programmed chips (noise seeds), default 10")
    p.add_argument("--data-dir", help="GLUE layout folder; default $IMC_SIM_DATA, else the datasets hub")
    p.add_argument("--eval-limit", type=int, help="evaluate on the first N dev examples")
    p.add_argument("--analog-head", action="store_true", help="put the pooler and task head on tiles too")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--plot", help="write accuracy versus time here (PNG)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from imc_sim.analog.deploy import deploy_checkpoint, format_deploy_table
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
    result = deploy_checkpoint(args.checkpoint, profile, times, args.seeds, args.data_dir,
                               args.eval_limit, args.analog_head, progress=not args.quiet)
    print(format_deploy_table(result))
    if args.json:
        write_text_atomic(args.json, json.dumps(result, indent=2) + "\n")
    if args.plot:
        curve = {"name": f"{result['method']} ({args.checkpoint})", **result}
        plot_drift([curve], args.plot, f"{result['task']} on {profile.name}", result["metric_name"])
    written = [p for p in (args.json, args.plot) if p]
    if written:
        print("wrote " + " and ".join(written))
    return 0
