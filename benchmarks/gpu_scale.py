"""Benchmark: imc-sim at the paper's model sizes, on a GPU or a CPU (issue 11).

Random-initialised models built from their configurations (no weights needed): RoBERTa-large
(355 M), GPT-2 medium and, for small machines, MiniLM-L6. Per shape, in one process, on
``--torch-device``:
- one digital evaluation: ``--batches`` batches of ``--batch`` x ``--seq`` random tokens;
- one imc-sim realization on ``--device`` (program + drift to 1 d + evaluate), its parts timed
  (a profile with static input ranges, as pcm-chip, calibrates them once on the same batches,
  untimed, as deploy does on data);
- a sweep of ``--seeds`` chips x ``--times`` drift times (each chip programmed once);
- aihwkit's own torch-tile realization of the same model (``convert_to_analog`` with 512 x 512
  tiles; GPT-2's Conv1D layers converted to Linear first, since aihwkit leaves them digital);
- training step times of GRASP, StochGRASP, LoRA and full fine-tuning (batch ``--batch``; not
  with ``--steps 0``, for a large shape on a small CPU).
On CUDA it also records the peak memory of an evaluation and of a realization. Prints a table per
shape and writes ``--out`` (JSON).

    python benchmarks/gpu_scale.py --shape minilm                      # a small CPU machine
    python benchmarks/gpu_scale.py --shape roberta-large gpt2-medium    # a GPU
"""

from __future__ import annotations  # noqa: I001 - imc_sim is imported first, out of order

import argparse
import copy
import json
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import imc_sim  # noqa: F401 - before transformers: its torchvision guard (imc_sim/torchvision_guard.py)
import torch
from torch import nn
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    GPT2Config,
    GPT2ForSequenceClassification,
    RobertaConfig,
    RobertaForSequenceClassification,
)

from imc_sim.cli import OneLineParser, run_script
from imc_sim.cli.numbers import non_negative_int, positive_int
from imc_sim.atomic import check_outputs, write_text_atomic
from imc_sim.crossbar import int8_product
from imc_sim.crossbar.mapping import deploy_model
from imc_sim.crossbar.rpu_config import build_rpu_config
from imc_sim.deploy.chip import Chip
from imc_sim.devices.profile import load_profile
from imc_sim.errors import ImcSimError
from imc_sim.peft import get_method
from imc_sim.peft.targets import in_out_features, is_linear, replace_module, weight_in_out
from imc_sim.table import format_table
from imc_sim.torch_device import resolve_torch_device
from imc_sim.units import parse_times
from imc_sim.host import this_host

ROOT = Path(__file__).resolve().parents[1]
METHODS = {"grasp": {"k": 32}, "stochgrasp": {"k": 64, "rows": "rows"}, "lora": {}, "full": {}}


def build(shape: str) -> nn.Module:
    """A randomly initialised two-class model of ``shape``."""
    torch.manual_seed(0)
    if shape == "roberta-large":
        return RobertaForSequenceClassification(RobertaConfig(
            hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
            max_position_embeddings=514, vocab_size=50265, type_vocab_size=1, num_labels=2))
    if shape == "gpt2-medium":
        return GPT2ForSequenceClassification(GPT2Config(
            n_embd=1024, n_layer=24, n_head=16, n_positions=1024, num_labels=2, pad_token_id=0))
    if shape == "minilm":
        return BertForSequenceClassification(BertConfig(
            hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536,
            vocab_size=30522, num_labels=2))
    raise ImcSimError(f"unknown shape {shape!r}")


def batches(model: nn.Module, n: int, batch: int, seq: int, device: torch.device) -> list[dict]:
    gen = torch.Generator().manual_seed(1)
    vocab = model.config.vocab_size
    out = []
    for _ in range(n):
        ids = torch.randint(1, vocab, (batch, seq), generator=gen)
        labels = torch.randint(0, 2, (batch,), generator=gen)
        out.append({"input_ids": ids.to(device), "attention_mask": torch.ones_like(ids).to(device),
                    "labels": labels.to(device)})
    return out


def timed(fn: Callable[[], object], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


@torch.no_grad()
def run_eval(model: nn.Module, data: list[dict]) -> None:
    for b in data:
        model(input_ids=b["input_ids"], attention_mask=b["attention_mask"])


def conv1d_to_linear(model: nn.Module) -> nn.Module:
    """GPT-2's Conv1D layers as nn.Linear (aihwkit's convert_to_analog only maps Linear)."""
    for name, module in list(model.named_modules()):
        if is_linear(module) and not isinstance(module, nn.Linear):
            d_in, d_out = in_out_features(module)
            linear = nn.Linear(d_in, d_out, device=module.weight.device)
            linear.weight.data.copy_(weight_in_out(module).T)
            linear.bias.data.copy_(module.bias)
            replace_module(model, name, linear)
    return model


def aihwkit_realization(model: nn.Module, profile_name: str, data: list[dict],
                        device: torch.device) -> dict[str, float]:
    from aihwkit.nn.conversion import convert_to_analog

    config = build_rpu_config(load_profile(profile_name))
    config.mapping.max_input_size = config.mapping.max_output_size = 512
    analog = convert_to_analog(conv1d_to_linear(copy.deepcopy(model)), config).to(device).eval()
    parts = {"program": timed(analog.program_analog_weights, device),
             "drift": timed(lambda: analog.drift_analog_weights(86400.0), device),
             "evaluate": timed(lambda: run_eval(analog, data), device)}
    return parts


def step_times(model: nn.Module, data: list[dict], steps: int, device: torch.device) -> dict[str, float]:
    """Median seconds per training step of each method (forward, backward, AdamW step)."""
    out = {}
    for name, options in METHODS.items():
        method = get_method(name)
        config = method.make_config(options)
        adapted = method.attach(copy.deepcopy(model).to(device), config).train()
        opt = torch.optim.AdamW([p for p in adapted.parameters() if p.requires_grad], lr=1e-4)

        def step(b: dict, method=method, config=config, adapted=adapted, opt=opt) -> None:
            loss = adapted(**b).loss
            extra = method.extra_loss(adapted, config)  # StochGRASP's eq. 6 penalty
            (loss if extra is None else loss + extra).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        times = [timed(partial(step, data[i % len(data)]), device) for i in range(steps + 2)]
        out[name] = statistics.median(times[2:])
        del adapted, opt
    return out


def peak_memory(fn: Callable[[], object], device: torch.device) -> int | None:
    if device.type != "cuda":
        return None
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    return torch.cuda.max_memory_allocated(device)


def bench_shape(shape: str, args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    model = build(shape).to(device).eval()
    data = batches(model, args.batches, args.batch, args.seq, device)
    profile = load_profile(args.device)
    times = parse_times(args.times)
    run_eval(model, data[:1])  # warm-up
    digital = statistics.median(timed(lambda: run_eval(model, data), device) for _ in range(args.repeats))
    digital_peak = peak_memory(lambda: run_eval(model, data), device)
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())

    deployment = deploy_model(copy.deepcopy(model), profile)
    deployment.model.to(device)
    deployment.calibrate(data, source="benchmark's random batches")  # static ranges only (pcm-chip)
    print(f"{shape}: {deployment.describe()}")
    parts: dict[str, list[float]] = {"program": [], "drift": [], "evaluate": []}
    for seed in range(args.repeats):
        chip = Chip(deployment, seed)
        parts["program"].append(timed(chip.program, device))
        parts["drift"].append(timed(lambda chip=chip: chip.drift_to(86400.0), device))
        parts["evaluate"].append(timed(lambda: run_eval(deployment.model, data), device))
    realization = statistics.median(sum(p) for p in zip(*parts.values(), strict=True))
    realization_peak = peak_memory(lambda: run_eval(deployment.model, data), device)

    def sweep() -> None:
        for seed in range(args.seeds):
            chip = Chip(deployment, seed)
            chip.program()
            for t in times:
                chip.drift_to(t)
                run_eval(deployment.model, data)

    sweep_seconds = timed(sweep, device)
    aihwkit = None if args.skip_aihwkit else aihwkit_realization(model, args.device, data, device)
    steps = step_times(model, data, args.steps, device) if args.steps > 0 else {}
    return {
        "shape": shape, "params": sum(p.numel() for p in model.parameters()),
        "digital_seconds": digital,
        "realization_seconds": realization,
        "realization_parts_seconds": {k: statistics.median(v) for k, v in parts.items()},
        "sweep_seconds": sweep_seconds, "sweep_realizations": args.seeds * len(times),
        "aihwkit_realization_seconds": None if aihwkit is None else sum(aihwkit.values()),
        "aihwkit_parts_seconds": aihwkit,
        "step_seconds": steps,
        "peak_bytes": {"digital_eval": digital_peak, "realization_eval": realization_peak,
                       "weights": weight_bytes},
    }


def table(r: dict[str, Any]) -> str:
    d = r["digital_seconds"]
    aih = r["aihwkit_realization_seconds"]
    steps = r["step_seconds"]
    rows = [
        ["digital evaluation", f"{d:.3f}", "1.00", ""],
        ["imc-sim realization (program + drift + evaluate)", f"{r['realization_seconds']:.3f}",
         f"{r['realization_seconds'] / d:.2f}", "<= 2 (GPU), <= 1.2 (CPU)"],
        *[[f"  of which {k}", f"{v:.3f}", f"{v / d:.2f}", ""]
          for k, v in r["realization_parts_seconds"].items()],
        [f"sweep ({r['sweep_realizations']} realizations)", f"{r['sweep_seconds']:.1f}",
         f"{r['sweep_seconds'] / d:.1f}", "<= 40 (GPU)"],
        ["aihwkit torch-tile realization", "not run" if aih is None else f"{aih:.2f}",
         "" if aih is None else f"{aih / d:.1f}", ""],
        *[[f"{k} step", f"{v:.3f}", f"{v / steps['lora']:.2f} x LoRA",
           {"grasp": "<= 1.1", "stochgrasp": "<= 1.3"}.get(k, "")] for k, v in steps.items()],
    ]
    peak = r["peak_bytes"]
    if peak["digital_eval"] is not None:
        rows.append(["peak memory, realization vs evaluation + weights (GiB)",
                     f"{peak['realization_eval'] / 2**30:.2f}",
                     f"{(peak['digital_eval'] + peak['weights']) / 2**30:.2f}", "<="])
    return format_table(["what", "seconds", "ratio", "target"], rows)


def main() -> None:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", nargs="+", default=["minilm"],
                        choices=["roberta-large", "gpt2-medium", "minilm"])
    parser.add_argument("--torch-device", default="auto")
    parser.add_argument("--device", default="pcm", help="NVM device profile")
    parser.add_argument("--batch", type=positive_int, default=32)
    parser.add_argument("--seq", type=positive_int, default=128)
    parser.add_argument("--batches", type=positive_int, default=8)
    parser.add_argument("--seeds", type=positive_int, default=10)
    parser.add_argument("--times", default="1s,1h,1d,1w,30d,1y,10y")
    parser.add_argument("--repeats", type=positive_int, default=3)
    parser.add_argument("--steps", type=non_negative_int, default=10,
                        help="training steps timed per method (0: none)")
    parser.add_argument("--skip-aihwkit", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gpu_scale.json")
    args = parser.parse_args()
    check_outputs({"--out": args.out})  # before the work: not a folder, a file can be made there
    load_profile(args.device)  # the profile and times too
    parse_times(args.times)
    device = resolve_torch_device(args.torch_device)
    results = []
    for shape in args.shape:
        r = bench_shape(shape, args, device)
        print(table(r))
        results.append(r)
    host = this_host(device)
    print(host.describe())
    limbs = int8_product.limbs()  # the CPU's int8 product: 127, or 63 without VNNI (None: fp32)
    meta = {"torch_device": str(device), "threads": torch.get_num_threads(), "host": host.to_json(),
            "int8_limbs": None if limbs is None else limbs.largest,
            "batch": args.batch, "seq": args.seq, "batches": args.batches, "device": args.device}
    write_text_atomic(args.out, json.dumps({"meta": meta, "shapes": results}, indent=2) + "\n")
    print(f"wrote {args.out}")


def run() -> None:
    """:func:`main`, with the device running out of memory as a user error (one line, exit 2, as
    every other); the JSON is written only at the end, so nothing is half-written."""
    try:
        main()
    except torch.OutOfMemoryError:
        raise ImcSimError("out of memory on the torch device: lower --batch or --seq, or run one "
                          "--shape at a time") from None


if __name__ == "__main__":
    run_script(run)
