"""Fine-tuning loop: AdamW, linear warm-up and decay, one tqdm bar, digital dev evaluation."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
from tqdm.auto import tqdm

from imc_sim import data, lm
from imc_sim.backbones import Backbone, fingerprint, is_head, load_backbone, model_reference
from imc_sim.calibration import training_batches
from imc_sim.checkpoint import trainable_state
from imc_sim.devices.profile import load_profile
from imc_sim.errors import ImcSimError
from imc_sim.evaluate import evaluate
from imc_sim.peft import Method, get_method
from imc_sim.peft.stochgrasp.config import auto_sigma_factor
from imc_sim.tasks import TaskSpec, task_record
from imc_sim.torch_device import out_of_memory_message, resolve_torch_device, to_device
from imc_sim.training.arguments import check_argument_types
from imc_sim.training.device_aware import DeviceTraining
from imc_sim.training.precision import Precision
from imc_sim.training.sigma_target import sigma_target_auto
from imc_sim.units import parse_time_range

DEFAULT_LR = {"grasp": 5e-3, "grasp-w": 3e-4, "stochgrasp": 3e-4, "lora": 5e-4, "ia3": 5e-3,
              "bitfit": 1e-3, "full": 3e-5, "lightning": 3e-5}
"""Learning rate per method when ``--lr`` is not given (few-parameter methods take larger steps)."""
DEVICE_METHODS = ("grasp", "grasp-w", "stochgrasp", "lora")
"""Methods that ``--device`` trains device-aware (their programmed weights have a closed form)."""
DEFAULT_DRIFT = "1d"


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
    device: str | None = None
    drift: str | None = None
    device_warmup: float = 0.0
    device_layers: str | None = None
    """Module-name patterns of the layers that train against --device (None: every analog layer)."""
    data_source: data.DataSource | None = None
    """Own files or a hub dataset; None: GLUE's layout at ``data_dir``."""

    torch_device: str = "auto"
    mixed_precision: str = "no"

    def __post_init__(self) -> None:  # a pathlib.Path recorded as text, as the command line gives it
        for name in ("model", "data_dir", "device"):
            if isinstance(getattr(self, name), os.PathLike):
                setattr(self, name, os.fspath(getattr(self, name)))

    def source(self) -> data.DataSource:
        return self.data_source or data.DataSource(data_dir=self.data_dir)

    def validate(self) -> None:
        check_argument_types(self)
        get_method(self.method).check_options(self.method_options)
        own = self.data_source
        if own is not None and self.data_dir is not None and self.data_dir != own.data_dir:
            raise ImcSimError(f"data_dir {self.data_dir!r} and data_source's {own.data_dir!r} "
                              "differ: give the folder once, in data_source")
        if own is not None and own.kind != "glue" and self.task not in ("sst2", "lm"):
            raise ImcSimError(f"task {self.task!r} names a GLUE task, read from GLUE's layout; own data "
                              "makes its task from its labels (leave the task out)")
        if self.task == "lm" and self.max_length < 2:
            raise ImcSimError(f"--max-length {self.max_length}: a language model's block needs at least 2 "
                              "tokens (a token, and the next one to predict)")
        if self.drift is not None and self.device is None:
            raise ImcSimError("--drift needs --device (the profile that drifts)")
        if self.drift is not None:
            if not isinstance(self.drift, str):
                raise ImcSimError(f"--drift is text, a time or a range such as '1d' or '1h..1y', not "
                                  f"{self.drift!r}")
            parse_time_range(self.drift)
        if self.device is not None and self.method not in DEVICE_METHODS:
            raise ImcSimError(f"--device trains {', '.join(DEVICE_METHODS)}; not {self.method!r}")
        if self.device_warmup and self.device is None and not get_method(self.method).trains_analog:
            raise ImcSimError("--device-warmup needs --device (or --method lightning, whose layers "
                              "are analog in training)")
        if self.device_layers is not None and self.device is None:
            raise ImcSimError("--device-layers needs --device")
        if auto_sigma_factor(self.method_options.get("sigma_target")) is not None and self.device is None:
            raise ImcSimError("--sigma-target auto needs --device (it is derived from the profile)")
        Precision.parse(self.mixed_precision, resolve_torch_device(self.torch_device))


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
            if is_head(name, model):
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


@dataclass
class Run:
    """A prepared training run: the adapted model and what one optimisation step needs."""

    args: TrainArgs
    task: TaskSpec
    method: Method
    config: dict[str, Any]
    backbone: Backbone
    base_print: dict[str, Any]
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LambdaLR
    stream: Iterator[dict[str, torch.Tensor]]
    lr: float
    precision: Precision
    scaler: torch.amp.GradScaler
    device: DeviceTraining | None = None
    steps_done: int = 0
    calibration: list[dict[str, torch.Tensor]] = field(default_factory=list)
    """Training batches that static input ranges are calibrated on (empty: dynamic ranges)."""
    analog: bool | None = None
    """Whether the method's analog layers are on (None before the first step)."""

    @property
    def model(self) -> torch.nn.Module:
        return self.backbone.model

    @property
    def torch_device(self) -> torch.device:
        return self.precision.device

    def step(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One optimisation step; returns (task loss, extra loss or None), detached, on the torch
        device (nothing is read back). With a device profile, the first ``device_warmup``
        fraction of the steps trains digitally (so does a method whose own layers are analog);
        static input ranges are calibrated at the first device-aware step
        (:mod:`imc_sim.training.static_ranges`)."""
        analog = self.steps_done >= self.args.device_warmup * self.args.max_steps
        if analog != self.analog:  # at the first step and where the warm-up ends
            self.method.set_analog(self.model, analog)
            self.analog = analog
        if self.device is not None:
            self.device.enabled = analog
            if self.device.enabled and self.device.needs_ranges:
                self.device.calibrate(self.calibration)
        self.steps_done += 1
        batch = to_device(next(self.stream), self.torch_device)
        with self.precision.autocast():
            task_loss = self.model(**batch).loss
            extra = self.method.extra_loss(self.model, self.config)
            loss = task_loss if extra is None else task_loss + extra
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.schedule.step()
        return task_loss.detach(), None if extra is None else extra.detach()


def prepare(args: TrainArgs) -> Run:
    """Load data and model, attach the method, build optimizer, schedule and batch stream."""
    args.validate()
    method = get_method(args.method)
    torch_device = resolve_torch_device(args.torch_device)
    precision = Precision.parse(args.mixed_precision, torch_device)
    profile, drift = None, None
    if args.device is not None:
        profile = load_profile(args.device)
        drift = parse_time_range(args.drift or DEFAULT_DRIFT)
        profile.check_times(sorted(set(drift)))
    options = {**args.method_options, "seed": args.seed}
    if args.task == "lm":  # a causal LM on plain text: blocks are cut once the tokenizer is loaded
        task, train_ex = lm.checked_task(args.source(), args.model), None
    else:
        task, train_ex = data.load_train(args.source(), args.task, args.train_limit)
    torch.manual_seed(args.seed)
    backbone = load_backbone(model_reference(args.model), task)
    if train_ex is None:  # before any adapter or device noise joins the forward
        lm.check_causal(backbone.model, backbone.reference["name"])
    factor = auto_sigma_factor(options.get("sigma_target"))
    if factor is not None:
        options["sigma_target"] = factor * sigma_target_auto(backbone.model, profile, drift[1])
        if options["sigma_target"] == 0:
            raise ImcSimError(f"--sigma-target auto: device {profile.name} puts no error on the weights "
                              "(a noise-free profile); give --sigma-target as a number")
    config = method.make_config(options)
    base_print = fingerprint(backbone.model)
    backbone.model = method.attach(backbone.model, config).to(torch_device)
    device = (DeviceTraining(backbone.model, profile, drift, args.seed, args.device_layers)
              if profile is not None else None)
    lr = args.lr if args.lr is not None else DEFAULT_LR[args.method]
    params = [p for p in backbone.model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(int(args.warmup * args.max_steps), args.max_steps)
    )
    if train_ex is None:
        lm.check_length(backbone.model, args.max_length)
        stream = lm.train_stream(args.source(), backbone.tokenizer, args.max_length, args.batch_size,
                                 args.seed, args.train_limit)
    else:
        stream = data.endless_batches(
            data.encode(train_ex, backbone.tokenizer, args.max_length), args.batch_size,
            torch.Generator().manual_seed(args.seed),
        )
    calibration = (training_batches(args.source(), task, backbone.tokenizer, args.max_length,
                                    args.train_limit) if device is not None and device.needs_ranges else [])
    backbone.model.train()
    return Run(args, task, method, config, backbone, base_print, optimizer, schedule, stream, lr,
               precision, precision.scaler(), device, calibration=calibration)


def check_finite(model: torch.nn.Module, steps: int, lr: float, device: str | None = None) -> None:
    """One-line error if training diverged (a trainable parameter is NaN or infinite), so that no
    checkpoint of it is written; ``device`` names the profile of device-aware training."""
    params = [p for p in model.parameters() if p.requires_grad]
    bad = int(torch.stack([(~p.isfinite()).sum() for p in params]).sum()) if params else 0
    if bad:
        raise ImcSimError(f"training diverged: {bad:,} trainable parameters are not finite after {steps} "
                          f"steps at learning rate {lr:g}; lower --lr" + (
                              f", or check the values of device profile {device}" if device else ""))


def train(args: TrainArgs, progress: bool = True) -> TrainResult:
    """Fine-tune ``args.method`` on ``args.task``; returns the adapted model and the checkpoint.
    Running out of device memory anywhere in it is one :class:`ImcSimError` saying what to lower.
    torch's global generator is seeded with ``args.seed`` for the run (a fresh head's initial
    weights) and given back as it was afterwards."""
    try:
        with torch.random.fork_rng(devices=range(torch.cuda.device_count())):  # manual_seed seeds each
            return _train(args, progress)
    except torch.OutOfMemoryError:
        raise ImcSimError(out_of_memory_message(args.batch_size, args.max_length,
                                                args.torch_device)) from None


def _train(args: TrainArgs, progress: bool) -> TrainResult:
    run = prepare(args)
    if run.task.is_lm:
        dev_batches, dev_size = lm.dev_batches(args.source(), run.backbone.tokenizer, args.max_length,
                                               args.eval_limit)
    else:
        dev_ex = data.load_dev(args.source(), run.task, args.eval_limit)
        dev_batches = data.eval_batches(data.encode(dev_ex, run.backbone.tokenizer, args.max_length))
        dev_size = len(dev_ex.labels)
    dev_batches = [to_device(b, run.torch_device) for b in dev_batches]
    counts = count_params(run.model)
    step_times: list[float] = []
    task_loss, extra = torch.zeros(()), None
    bar = tqdm(range(args.max_steps), desc=f"train {args.method}", disable=not progress)
    with run.device or nullcontext():  # device-aware forwards restored whatever happens
        for step in bar:
            start = time.perf_counter()
            task_loss, extra = run.step()
            step_times.append(time.perf_counter() - start)
            if progress and step % 10 == 0:
                bar.set_postfix(loss=f"{task_loss.item():.3f}")
    check_finite(run.model, args.max_steps, run.lr, args.device)
    metric = evaluate(run.model, dev_batches, run.task)
    steady = step_times[min(5, len(step_times) - 1):]
    metrics = {
        "method": args.method,
        "task": run.task.name,
        "metric_name": run.task.metric_name,
        "metric": metric,
        **counts,
        "seconds_per_step": sum(steady) / len(steady),
        "final_task_loss": task_loss.item(),
        "final_extra_loss": 0.0 if extra is None else extra.item(),
        "lr": run.lr,
        "steps": args.max_steps,
        "dev_examples": dev_size,
        "device": args.device,
        "drift": (args.drift or DEFAULT_DRIFT) if args.device else None,
        "torch_device": str(run.torch_device),
        "mixed_precision": args.mixed_precision,
    }
    saved_method, saved_config, saved_model = run.method.export(run.model, run.config)
    payload = {
        "base_model": run.backbone.reference,
        "base_fingerprint": run.base_print,
        "task": run.task.name,
        "labels": list(run.task.labels),
        "task_spec": task_record(run.task),
        "method": saved_method,
        "config": saved_config,
        "seed": args.seed,
        "metrics": metrics,
        "train_args": recorded_args(args),
        "state": trainable_state(saved_model),
    }
    ranges = run.device.stored_ranges() if run.device is not None else None
    if ranges is not None:
        payload["input_ranges"] = ranges.to_record()
    return TrainResult(run.model, run.backbone.tokenizer, payload, metrics)


def recorded_args(args: TrainArgs) -> dict[str, Any]:
    """``args`` as the checkpoint records them (without the method's options, which its config
    holds), their data paths absolute (:func:`imc_sim.calibration.recorded_training_source` reads
    the training file back from whatever folder deploy runs in)."""
    source = args.source().absolute()
    recorded = asdict(replace(args, data_dir=source.data_dir, data_source=source))
    return {k: v for k, v in recorded.items() if k != "method_options"}

