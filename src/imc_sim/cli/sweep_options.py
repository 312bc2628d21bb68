"""Options, checks and outputs shared by ``imc-sim deploy`` and ``imc-sim compare``."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from imc_sim.deploy.results import AnyResult, CheckpointCurve
    from imc_sim.devices.profile import DeviceProfile

DEFAULT_TIMES = "1s,1h,1d,1w,30d,1y,10y"


def add_sweep_options(p: argparse.ArgumentParser, default_times: str = DEFAULT_TIMES) -> None:
    """--device, --drift, --seeds, --data-dir, --eval-limit, --json, --plot, --quiet."""
    p.add_argument("--device", default="pcm", help="shipped profile name (imc-sim devices) or a YAML path")
    p.add_argument("--drift", nargs="+", default=[default_times], metavar="TIME",
                   help="times after programming: 1s 90s 1h 1d 1w 30d 1mo 1y 10y 3600 "
                   f"(default {default_times})")
    p.add_argument("--seeds", type=int, default=10, help="programmed chips (noise seeds), default 10")
    p.add_argument("--data-dir", help="GLUE layout folder; default $IMC_SIM_DATA, else the datasets hub")
    p.add_argument("--eval-limit", type=int, help="evaluate on the first N dev examples")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--plot", help="write the metric versus time here (.png, .pdf or .svg)")
    p.add_argument("--torch-device", default="auto",
                   help="torch device of the model and chip: auto (CUDA where available), cpu, cuda, cuda:N")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def sweep_setup(args: argparse.Namespace) -> tuple[DeviceProfile, list[float]]:
    """The profile and drift times, and the output paths, checked before any model is loaded."""
    from imc_sim.cli.outputs import check_output_paths
    from imc_sim.deploy.sweep import MAX_SEEDS
    from imc_sim.devices.profile import load_profile
    from imc_sim.errors import ImcSimError
    from imc_sim.units import parse_times

    profile = load_profile(args.device)
    times = parse_times(args.drift)
    profile.check_times(times)
    if not 1 <= args.seeds <= MAX_SEEDS:
        raise ImcSimError(f"--seeds must be from 1 to {MAX_SEEDS}, got {args.seeds}")
    if args.eval_limit is not None and args.eval_limit < 1:
        raise ImcSimError(f"--eval-limit must be at least 1, got {args.eval_limit}")
    check_output_paths(args, {"--json": args.json, "--plot": args.plot})
    return profile, times


def write_outputs(args: argparse.Namespace, result: AnyResult, curves: list[CheckpointCurve], title: str,
                  metric_name: str | None = None) -> None:
    """--json (the result) and --plot (the curves, in ``metric_name``: default the result's),
    each written atomically."""
    from imc_sim.deploy.plots import plot_drift
    from imc_sim.deploy.results import save_result

    if args.json:
        save_result(args.json, result)
    if args.plot:
        plot_drift(curves, args.plot, title, metric_name or result.metric_name)
    written = [p for p in (args.json, args.plot) if p]
    if written:
        print("wrote " + " and ".join(written))
