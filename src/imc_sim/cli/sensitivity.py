"""``imc-sim sensitivity``: the metric each layer costs on the chip, one layer switched at a time."""

from __future__ import annotations

import argparse

from imc_sim.cli.data_options import add_data_options
from imc_sim.cli.sweep_options import add_sweep_options


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sensitivity", help="per-layer sensitivity map of a checkpoint under drift",
                       description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", help="model.pt written by imc-sim train")
    add_sweep_options(p, default_times="1d")
    add_data_options(p, training=False, data_dir=False)
    p.add_argument("--analog-head", action="store_true", help="put the pooler and task head on tiles too")
    p.add_argument("--mode", choices=["one-analog", "one-digital", "both"], default="both",
                   help="one-analog: one layer analog, the rest digital; one-digital: one layer "
                   "digital, the rest analog (default both)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from imc_sim.cli.data_options import data_source
    from imc_sim.cli.sweep_options import sweep_setup
    from imc_sim.deploy.layer_maps import checkpoint_sensitivity
    from imc_sim.deploy.sensitivity import MODES, format_sensitivity_table, save_sensitivity
    from imc_sim.deploy.sensitivity_plots import plot_sensitivity
    from imc_sim.torch_device import resolve_torch_device

    profile, times = sweep_setup(args)
    modes = MODES if args.mode == "both" else (args.mode,)
    result = checkpoint_sensitivity(args.checkpoint, profile, times, args.seeds, modes, data_source(args),
                                    args.eval_limit, args.analog_head, progress=not args.quiet,
                                    torch_device=resolve_torch_device(args.torch_device))
    print("\n\n".join(format_sensitivity_table(result, mode) for mode in modes))
    if args.json:
        save_sensitivity(args.json, result)
    if args.plot:
        plot_sensitivity(result, args.plot)
    written = [p for p in (args.json, args.plot) if p]
    if written:
        print("wrote " + " and ".join(written))
    return 0
