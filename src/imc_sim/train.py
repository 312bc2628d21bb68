"""Fine-tuning loop: AdamW, linear warm-up and decay, one tqdm bar, digital dev evaluation."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from imc_sim import data
from imc_sim.backbones import fingerprint, is_head, load_backbone, model_reference
from imc_sim.checkpoint import trainable_state
from imc_sim.errors import ImcSimError
from imc_sim.evaluate import evaluate
from imc_sim.peft import get_method
from imc_sim.tasks import get_task

DEFAULT_LR = {"grasp": 5e-3, "grasp-w": 1e-3, "stochgrasp": 1e-3, "lora": 5e-4, "ia3": 5e-3,
              "bitfit": 1e-3, "full": 3e-5}
"""Learning rate per method when ``--lr`` is not given (few-parameter methods take larger steps)."""


@dataclass
class TrainArgs:
    """Everything that defines a training run (recorded in the checkpoint)."""

    method: str = "grasp"
    task: str = "sst2"
    model: str | None = None
    data_dir: str | None = None
    lr: float | None = None
    batch_size: int = 32
    max_steps: int = 1500
    max_length: int = 64
    seed: int = 0
    train_limit: int | None = None
    eval_limit: int | None = None
    warmup: float = 0.06
    method_options: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        for name in ("batch_size", "max_steps", "max_length"):
            if getattr(self, name) < 1:
                raise ImcSimError(f"--{name.replace('_', '-')} must be at least 1")
        if self.lr is not None and self.lr <= 0:
            raise ImcSimError(f"--lr must be positive, got {self.lr}")


@dataclass
class TrainResult:
    model: torch.nn.Module
    tokenizer: Any
    payload: dict[str, Any]
    metrics: dict[str, Any]


def count_params(model: torch.nn.Module) -> dict[str, int]:
    """Trainable parameters split into method (adapter) and task head, and the frozen base."""
    trainable = head = base = 0
    for name, p in model.named_parameters():
        if p.requires_grad:
            if is_head(name):
                head += p.numel()
            else:
                trainable += p.numel()
        else:
            base += p.numel()
    return {"trainable_params": trainable, "head_params": head, "base_params": base + trainable}


def lr_lambda(warmup_steps: int, total: int):
    """Linear warm-up to 1 over ``warmup_steps``, then linear decay to 0 at ``total``."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return max(0.0, (total - step) / max(1, total - warmup_steps))
    return factor


def train(args: TrainArgs, progress: bool = True) -> TrainResult:
    """Fine-tune ``args.method`` on ``args.task``; returns the adapted model and the checkpoint."""
    args.validate()
    task = get_task(args.task)
    method = get_method(args.method)
    config = method.make_config({**args.method_options, "seed": args.seed})
    train_ex = data.load_split(task, "train", args.data_dir, args.train_limit)
    dev_ex = data.load_split(task, "dev", args.data_dir, args.eval_limit)

    torch.manual_seed(args.seed)
    backbone = load_backbone(model_reference(args.model), task)
    base_print = fingerprint(backbone.model)
    model = method.attach(backbone.model, config)
    counts = count_params(model)
    train_enc = data.encode(train_ex, backbone.tokenizer, args.max_length)
    dev_batches = list(data.batches(data.encode(dev_ex, backbone.tokenizer, args.max_length), 128))

    lr = args.lr if args.lr is not None else DEFAULT_LR[args.method]
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(int(args.warmup * args.max_steps), args.max_steps)
    )
    stream = data.endless_batches(
        train_enc, args.batch_size, torch.Generator().manual_seed(args.seed)
    )
    model.train()
    step_times: list[float] = []
    task_loss = extra = torch.zeros(())
    bar = tqdm(range(args.max_steps), desc=f"train {args.method}", disable=not progress)
    for step in bar:
        start = time.perf_counter()
        task_loss = model(**next(stream)).loss
        extra_term = method.extra_loss(model, config)
        loss = task_loss if extra_term is None else task_loss + extra_term
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        step_times.append(time.perf_counter() - start)
        if extra_term is not None:
            extra = extra_term.detach()
        if step % 10 == 0:
            bar.set_postfix(loss=f"{task_loss.item():.3f}")
    steady = step_times[min(5, len(step_times) - 1):]
    metric = evaluate(model, dev_batches, task)
    metrics = {
        "method": args.method,
        "task": task.name,
        "metric_name": task.metric_name,
        "metric": metric,
        **counts,
        "seconds_per_step": sum(steady) / len(steady),
        "final_task_loss": task_loss.item(),
        "final_extra_loss": extra.item(),
        "lr": lr,
        "steps": args.max_steps,
        "dev_examples": len(dev_ex.labels),
    }
    payload = {
        "base_model": backbone.reference,
        "base_fingerprint": base_print,
        "task": task.name,
        "labels": list(task.labels),
        "method": args.method,
        "config": config,
        "seed": args.seed,
        "metrics": metrics,
        "train_args": {k: v for k, v in asdict(args).items() if k != "method_options"},
        "state": trainable_state(model),
    }
    return TrainResult(model, backbone.tokenizer, payload, metrics)
