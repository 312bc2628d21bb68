"""``imc-sim compare``: several checkpoints on the same device and the same noise seeds."""

from __future__ import annotations

import argparse

from imc_sim.cli.data_options import add_data_options
from imc_sim.cli.generate_options import add_generate_options, check_generate_options, generate_continuations
from imc_sim.cli.sweep_options import add_sweep_options


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="compare checkpoints on one device under drift",
                       description=__doc__.splitlines()[0])
    p.add_argument("checkpoints", nargs="+", help="model.pt files of the same task and base model")
    add_sweep_options(p)
    add_data_options(p, training=False, data_dir=False)  # --data-dir comes with the sweep options
    add_generate_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from imc_sim.cli.data_options import data_source
    from imc_sim.cli.sweep_options import sweep_setup, write_outputs
    from imc_sim.deploy.compare import compare_checkpoints, format_compare_table
    from imc_sim.torch_device import resolve_torch_device

    profile, times = sweep_setup(args)
    check_generate_options(args, args.checkpoints)
    continuations = generate_continuations(args, args.checkpoints, profile, times)
    result = compare_checkpoints(args.checkpoints, profile, times, args.seeds, args.data_dir,
                                 args.eval_limit, progress=not args.quiet,
                                 source=data_source(args),
                               torch_device=resolve_torch_device(args.torch_device))
    print(format_compare_table(result))
    for generated in continuations:
        print(generated.format())
    write_outputs(args, result, list(result.checkpoints), f"{result.task} on {profile.name}")
    return 0
