"""Benchmark: a StochGRASP training step against a LoRA step, interleaved in one process (issue 11).

The training-step part of ``gpu_scale.py`` alone: the same randomly initialised model, batches and
method options (``gpu_scale.METHODS``), every arm prepared once, then ``--rounds`` rounds of one
step per arm in turn, so that a busier stretch of a shared machine weighs on every arm alike.
Prints each arm's median step, wall-clock and process CPU time (the latter less sensitive to other
load on a shared machine), its ratio to LoRA's median and the median of the per-round ratios.
``--profile`` instead runs ``--steps`` profiled steps of the first arm under torch.profiler and
prints its operator table (self CPU time).

    python benchmarks/stochgrasp_step.py --shape minilm --threads 1
    python benchmarks/stochgrasp_step.py --arms stochgrasp --profile --steps 2
"""

from __future__ import annotations  # noqa: I001 - imc_sim is imported first, out of order

import copy
import statistics
import time

import imc_sim  # noqa: F401 - before transformers: its torchvision guard
import torch
from gpu_scale import METHODS, batches, build, timed

from imc_sim.cli import OneLineParser, run_script
from imc_sim.cli.numbers import non_negative_int, positive_int, names_of
from imc_sim.peft import get_method


def make_step(model: torch.nn.Module, name: str, device: torch.device):
    """A closure running one step (forward, eq. 6 penalty where it applies, backward, AdamW)."""
    method = get_method(name)
    config = method.make_config(METHODS[name])
    adapted = method.attach(copy.deepcopy(model).to(device), config).train()
    opt = torch.optim.AdamW([p for p in adapted.parameters() if p.requires_grad], lr=1e-4)

    def step(b: dict) -> None:
        loss = adapted(**b).loss
        extra = method.extra_loss(adapted, config)
        (loss if extra is None else loss + extra).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def main() -> None:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="minilm", choices=["roberta-large", "gpt2-medium", "minilm"])
    parser.add_argument("--arms", type=names_of(METHODS), default=("stochgrasp", "lora"),
                        help=f"comma-separated, of {', '.join(METHODS)}")
    parser.add_argument("--batch", type=positive_int, default=32)
    parser.add_argument("--seq", type=positive_int, default=128)
    parser.add_argument("--rounds", type=positive_int, default=8)
    parser.add_argument("--warmup", type=non_negative_int, default=1)
    parser.add_argument("--threads", type=positive_int, default=None)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--steps", type=positive_int, default=2, help="profiled steps (with --profile)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    model = build(args.shape).eval()
    data = batches(model, 4, args.batch, args.seq, device)
    arms = {name: make_step(model, name, device) for name in args.arms}
    for step in arms.values():
        for i in range(args.warmup):
            step(data[i % len(data)])
    if args.profile:
        step = next(iter(arms.values()))
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            for i in range(args.steps):
                step(data[i % len(data)])
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30))
        return
    wall: dict[str, list[float]] = {name: [] for name in arms}
    cpu: dict[str, list[float]] = {name: [] for name in arms}
    for r in range(args.rounds):
        for name, step in arms.items():
            start = time.process_time()
            wall[name].append(timed(lambda step=step, r=r: step(data[r % len(data)]), device))
            cpu[name].append(time.process_time() - start)
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    print(f"threads {torch.get_num_threads()}, batch {args.batch} x {args.seq}, {args.rounds} rounds, "
          f"load average at the end {load}")
    for clock, times in (("wall", wall), ("CPU", cpu)):
        for name, t in times.items():
            line = f"{name:12s} {clock:4s} median {statistics.median(t):.3f} s"
            if "lora" in times:
                lora = times["lora"]
                per_round = statistics.median(a / b for a, b in zip(t, lora, strict=True))
                line += (f"  {statistics.median(t) / statistics.median(lora):.2f} x LoRA"
                         f"  (median per-round ratio {per_round:.2f})")
            print(line)

if __name__ == "__main__":
    run_script(main)
