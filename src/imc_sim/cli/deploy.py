"""``imc-sim deploy``: program a checkpoint onto simulated NVM tiles and measure it under drift."""

from __future__ import annotations

import argparse

from imc_sim.cli.data_options import add_data_options
from imc_sim.cli.generate_options import add_generate_options, check_generate_options, generate_continuations
from imc_sim.cli.sweep_options import add_sweep_options


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("deploy", help="evaluate a checkpoint on a device profile under drift",
                       description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", help="model.pt written by imc-sim train")
    add_sweep_options(p)
    add_data_options(p, training=False, data_dir=False)  # --data-dir comes with the sweep options
    p.add_argument("--analog-head", action="store_true", help="put the pooler and task head on tiles too")
    p.add_argument("--digital-layers", metavar="PATTERNS",
                   help="keep these layers digital: comma-separated module names, name suffixes, "
                   "regular expressions or a preset (ff2, kv-ff2)")
    p.add_argument("--keep-digital", type=int, default=0, metavar="N",
                   help="keep the N layers that cost most digital (one-analog sensitivity at the "
                   "first drift time, same seeds: one more evaluation per layer and seed; see imc-sim "
                   "sensitivity)")
    p.add_argument("--input-ranges", default="auto", metavar="SOURCE",
                   help="auto, checkpoint, train or dev: static input ranges (profiles with "
                   "input_range: static) from the checkpoint "
                   "(saved by device-aware training on the same row tiles), the training file it "
                   "records, or the first dev batches; auto: the first of these that it has "
                   "(default: auto)")
    p.add_argument("--grasp-periphery", action="store_true",
                   help="program the frozen base weights and apply the GRASP scale and shift "
                   "digitally before each tile's DAC (activation-space GRASP checkpoints), instead of "
                   "merging them into the programmed weights")
    add_generate_options(p)
    p.set_defaults(run=run)


def check_periphery_options(args: argparse.Namespace) -> None:
    """--grasp-periphery: a GRASP checkpoint, and none of the options it does not combine with."""
    from imc_sim.deploy.periphery import OPTION, check_periphery
    from imc_sim.errors import ImcSimError

    if not args.grasp_periphery:
        return
    for given, flag in ((args.digital_layers, "--digital-layers"), (args.keep_digital, "--keep-digital"),
                        (args.generate, "--generate")):
        if given:
            raise ImcSimError(f"{flag} does not apply with {OPTION}")
    check_periphery(args.checkpoint)


def run(args: argparse.Namespace) -> int:
    from imc_sim.cli.data_options import data_source
    from imc_sim.cli.sweep_options import sweep_setup, write_outputs
    from imc_sim.deploy.placement import Placement
    from imc_sim.deploy.range_source import check_source
    from imc_sim.deploy.run import deploy_checkpoint, format_deploy_table
    from imc_sim.errors import ImcSimError
    from imc_sim.torch_device import resolve_torch_device

    check_source(args.input_ranges)
    profile, times = sweep_setup(args)
    if args.input_ranges != "auto" and profile.periphery.input_range != "static":
        raise ImcSimError(f"--input-ranges {args.input_ranges} applies to profiles with static input "
                          f"ranges; {profile.name}'s are dynamic (periphery.input_range)")
    placement = Placement(args.digital_layers, args.keep_digital)
    check_generate_options(args, [args.checkpoint])
    check_periphery_options(args)
    continuations = generate_continuations(args, [args.checkpoint], profile, times, args.analog_head,
                                           args.input_ranges)
    result = deploy_checkpoint(args.checkpoint, profile, times, args.seeds, args.data_dir,
                               args.eval_limit, args.analog_head, progress=not args.quiet,
                               source=data_source(args), placement=placement,
                               torch_device=resolve_torch_device(args.torch_device),
                               input_ranges=args.input_ranges, grasp_periphery=args.grasp_periphery)
    print(format_deploy_table(result))
    for generated in continuations:
        print(generated.format())
    write_outputs(args, result, [result.curve], f"{result.task} on {profile.name}")
    return 0
