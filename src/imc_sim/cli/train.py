"""``imc-sim train``: fine-tune a transformer with GRASP, StochGRASP or a baseline."""

from __future__ import annotations

import argparse

from imc_sim.cli.data_options import add_data_options
from imc_sim.cli.numbers import (
    learning_rate,
    non_negative_float,
    positive_float,
    positive_int,
    random_seed,
    step_fraction,
)
from imc_sim.errors import ImcSimError
from imc_sim.peft import METHODS
from imc_sim.peft.stochgrasp.config import auto_sigma_factor
from imc_sim.tasks import TASKS


def sigma_target(text: str) -> float | str:
    """A number, or 'auto' / 'auto*F' (F times the device's weight error)."""
    if text.startswith("auto"):
        try:
            auto_sigma_factor(text)
        except ImcSimError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
        return text
    try:
        float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {text!r}") from None
    return non_negative_float(text)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="fine-tune a model and write model.pt",
                       description=__doc__.splitlines()[0])
    p.add_argument("--model", help="hub id or local folder (default: the packaged MiniLM-L6)")
    p.add_argument("--task", default="sst2", choices=list(TASKS), metavar="TASK",
                   help=f"GLUE task, or lm: a causal language model on plain text files "
                   f"({', '.join(TASKS)}; default sst2)")
    add_data_options(p, training=True)
    p.add_argument("--method", default="grasp", help=f"one of {', '.join(METHODS)}")
    p.add_argument("--k", type=positive_int,
                   help="groups K (default 32 for grasp, 64 for grasp-w/stochgrasp)")
    p.add_argument("--targets", help="preset all-linear | kv-ff2 | ff2, or module-name patterns")
    p.add_argument("--rows", choices=["rows", "shared"], help="weight-space f(i): per row or shared")
    p.add_argument("--sampling", choices=["weights", "outputs"],
                   help="weight-space dW in training: materialised per weight (the paper's) or "
                   "drawn on the outputs from their mean and variance (default outputs)")
    p.add_argument("--no-scale", dest="learn_scale", action="store_false", default=None,
                   help="GRASP without the scale gamma (Table V ablation)")
    p.add_argument("--no-shift", dest="learn_shift", action="store_false", default=None,
                   help="GRASP without the shift beta (Table V ablation)")
    p.add_argument("--lora-r", type=positive_int, help="LoRA rank (default 8)")
    p.add_argument("--sigma-target", type=sigma_target,
                   help="StochGRASP sigma_target of eq. 6 (0.01), or 'auto': the weight error of --device at "
                   "the end of --drift; 'auto*F': F times that")
    p.add_argument("--lam", type=non_negative_float, help="StochGRASP lambda of eq. 6 (0.05)")
    p.add_argument("--weight-noise", type=non_negative_float,
                   help="lightning: training weight noise, std in units of each column's max |w| (0.05)")
    p.add_argument("--clip-sigma", type=positive_float,
                   help="lightning: clip each column's weights at this many std before every step (2.5)")
    p.add_argument("--device", help="train device-aware against this profile (name or YAML path)")
    p.add_argument("--drift", help="drift time, or a range such as 1h..1y, for --device (default 1d)")
    p.add_argument("--device-warmup", type=step_fraction, default=0.0, metavar="FRACTION",
                   help="train digitally for this fraction of the steps before --device (or "
                   "lightning's analog layers) switches on")
    p.add_argument("--device-layers", metavar="PATTERNS",
                   help="train only these layers against --device (comma-separated module-name patterns, "
                   "as --targets; default: every analog layer); deploy still maps them all")
    p.add_argument("--torch-device", default="auto",
                   help="where to train: auto (CUDA where available), cpu, cuda or cuda:N")
    p.add_argument("--mixed-precision", default="no", choices=["no", "bf16", "fp16"],
                   help="autocast the forward in bf16 or fp16 (default no)")
    p.add_argument("--lr", type=learning_rate, help="learning rate in (0, 1] (default per method)")
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--max-steps", type=positive_int, default=1500)
    p.add_argument("--max-length", type=positive_int, default=64)
    p.add_argument("--seed", type=random_seed, default=0, help="training seed, 0 to 2**63 - 1 (default 0)")
    p.add_argument("--train-limit", type=positive_int, help="use only the first N training examples")
    p.add_argument("--eval-limit", type=positive_int, help="evaluate on the first N dev examples")
    p.add_argument("--out", default="model.pt", help="checkpoint to write (default model.pt)")
    p.add_argument("--json", help="also write the metrics as JSON here")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from imc_sim.atomic import write_json_atomic
    from imc_sim.checkpoint import save_checkpoint
    from imc_sim.cli.data_options import data_source
    from imc_sim.cli.outputs import check_output_paths
    from imc_sim.metrics import metric_format
    from imc_sim.table import format_table
    from imc_sim.training.loop import TrainArgs, train

    check_output_paths(args, {"--out": args.out, "--json": args.json})
    options = {k: getattr(args, k) for k in
               ("k", "targets", "rows", "sampling", "learn_scale", "learn_shift", "lora_r",
                "sigma_target", "lam", "weight_noise", "clip_sigma")}
    result = train(
        TrainArgs(method=args.method, task=args.task, model=args.model, data_dir=args.data_dir,
                  lr=args.lr, batch_size=args.batch_size, max_steps=args.max_steps,
                  max_length=args.max_length, seed=args.seed, train_limit=args.train_limit,
                  eval_limit=args.eval_limit, method_options=options, device=args.device,
                  drift=args.drift, device_warmup=args.device_warmup,
                  device_layers=args.device_layers, data_source=data_source(args),
                  torch_device=args.torch_device, mixed_precision=args.mixed_precision),
        progress=not args.quiet,
    )
    m = result.metrics
    save_checkpoint(args.out, result.payload)
    if args.json:
        write_json_atomic(args.json, m)
    print(format_table(
        ["method", "device", "task", m["metric_name"], "trainable", "head", "base", "s/step"],
        [[m["method"], f"{m['device']} @ {m['drift']}" if m["device"] else "-", m["task"],
          metric_format(m["metric_name"])(m["metric"]), m["trainable_params"], m["head_params"],
          m["base_params"],
          f"{m['seconds_per_step']:.3f}"]],
    ))
    print(f"wrote {args.out}" + (f" and {args.json}" if args.json else ""))
    return 0
