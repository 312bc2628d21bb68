"""``imc-sim multitask``: several GRASP tasks on one chip under drift, without reprogramming.

The shared base is programmed once per seed; at every drift time each task's adapter (digital,
before the tiles' DACs), head and input ranges are switched in and its dev set evaluated.
"""

from __future__ import annotations

import argparse

from imc_sim.cli.sweep_options import add_sweep_options


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("multitask", help="GRASP checkpoints of one base model on one chip under drift",
                       description=__doc__.splitlines()[0])
    p.add_argument("checkpoints", nargs="+",
                   help="model.pt files (--method grasp) fine-tuned from the same base weights, each "
                   "evaluated on its own task's dev set")
    add_sweep_options(p)
    p.set_defaults(run=run)


def check_glue_task(path: str) -> None:
    """One line if ``path`` was not trained on a GLUE task: multitask reads every dev set from
    ``--data-dir`` (own files and plain text are for ``deploy`` and ``compare``)."""
    from imc_sim.checkpoint import read_checkpoint
    from imc_sim.errors import ImcSimError
    from imc_sim.tasks import task_from_checkpoint

    task = task_from_checkpoint(read_checkpoint(path))
    if task.custom or task.is_lm:
        trained = "its own data files" if task.custom else "plain text (a language model)"
        raise ImcSimError(f"multitask reads GLUE dev sets from --data-dir; {path} was trained on {trained}: "
                          "deploy it on its own")


def run(args: argparse.Namespace) -> int:
    from imc_sim.cli.sweep_options import sweep_setup, write_outputs
    from imc_sim.data import DataSource
    from imc_sim.deploy.multitask import format_multitask_table, multitask_sweep
    from imc_sim.deploy.periphery import check_periphery
    from imc_sim.torch_device import resolve_torch_device

    profile, times = sweep_setup(args)
    for path in args.checkpoints:
        check_periphery(path, needed_by="multitask")
        check_glue_task(path)
    result = multitask_sweep(args.checkpoints, profile, times, args.seeds,
                             DataSource(data_dir=args.data_dir), args.eval_limit, progress=not args.quiet,
                             torch_device=resolve_torch_device(args.torch_device))
    print(format_multitask_table(result))
    metrics = {t.metric_name for t in result.tasks}
    write_outputs(args, result, [t.curve for t in result.tasks], f"{len(result.tasks)} tasks on one "
                  f"{profile.name} chip", metrics.pop() if len(metrics) == 1 else "task metric")
    return 0
