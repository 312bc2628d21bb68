"""The method table: every fine-tuning method behind one small interface.

A method builds its config from options, attaches to a freshly loaded Hugging Face model (freezing
all but its own parameters and the task head), may add a term to the loss, and merges back into a
plain Hugging Face model. LoRA and IA3 come from the Hugging Face ``peft`` library itself.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn

from imc_sim.errors import ImcSimError
from imc_sim.peft.grasp import GraspConfig, attach_grasp
from imc_sim.peft.inject import freeze_all_but, merge_adapters
from imc_sim.peft.stochgrasp import StochGraspConfig, attach_stochgrasp, sigma_penalty


def _fill(cls: type, options: dict[str, Any], **fixed: Any) -> dict[str, Any]:
    """``cls``'s defaults, overridden by the options it knows (None means 'default')."""
    names = {f.name for f in fields(cls)}
    given = {k: v for k, v in options.items() if k in names and v is not None}
    return asdict(cls(**{**given, **fixed}))


@dataclass(frozen=True)
class Method:
    """One fine-tuning method: config, attach, extra loss, merge."""

    name: str
    description: str

    def make_config(self, options: dict[str, Any]) -> dict[str, Any]:
        return {}

    def attach(self, model: nn.Module, config: dict[str, Any]) -> nn.Module:
        raise NotImplementedError

    def extra_loss(self, model: nn.Module, config: dict[str, Any]) -> torch.Tensor | None:
        return None

    def merge(self, model: nn.Module) -> nn.Module:
        return merge_adapters(model)


class Grasp(Method):
    def make_config(self, options: dict[str, Any]) -> dict[str, Any]:
        return _fill(GraspConfig, options)

    def attach(self, model: nn.Module, config: dict[str, Any]) -> nn.Module:
        return attach_grasp(model, GraspConfig(**config))


@dataclass(frozen=True)
class WeightGrasp(Method):
    stochastic: bool = True

    def make_config(self, options: dict[str, Any]) -> dict[str, Any]:
        return _fill(StochGraspConfig, options, stochastic=self.stochastic)

    def attach(self, model: nn.Module, config: dict[str, Any]) -> nn.Module:
        config = {**config, "sigma_init": tuple(config["sigma_init"])}
        return attach_stochgrasp(model, StochGraspConfig(**config))

    def extra_loss(self, model: nn.Module, config: dict[str, Any]) -> torch.Tensor | None:
        if not self.stochastic:
            return None
        return config["lam"] * sigma_penalty(model, config["sigma_target"])


class PeftLibrary(Method):
    """LoRA / IA3 through Hugging Face ``peft`` (task head saved as ``modules_to_save``)."""

    def make_config(self, options: dict[str, Any]) -> dict[str, Any]:
        targets = options.get("targets")
        patterns = None if targets in (None, "all-linear") else targets.split(",")
        if self.name == "lora":
            return {"r": options.get("lora_r") or 8, "lora_alpha": 16, "lora_dropout": 0.1,
                    "target_modules": patterns}
        return {"target_modules": None}

    def attach(self, model: nn.Module, config: dict[str, Any]) -> nn.Module:
        from peft import IA3Config, LoraConfig, TaskType, get_peft_model

        cls = LoraConfig if self.name == "lora" else IA3Config
        task_type = TaskType.CAUSAL_LM if model.can_generate() else TaskType.SEQ_CLS
        try:
            return get_peft_model(model, cls(task_type=task_type, **config))
        except ValueError as exc:
            raise ImcSimError(f"{self.name}: {exc}".splitlines()[0]) from None

    def merge(self, model: nn.Module) -> nn.Module:
        return model.merge_and_unload()


class BitFit(Method):
    def attach(self, model: nn.Module, config: dict[str, Any]) -> nn.Module:
        freeze_all_but(model, lambda name: name.endswith(".bias"))
        return model


class Full(Method):
    def attach(self, model: nn.Module, config: dict[str, Any]) -> nn.Module:
        freeze_all_but(model, lambda name: True)
        return model


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Grasp("grasp", "GRASP: grouped input scale and shift (eq. 1-2)"),
        WeightGrasp("grasp-w", "weight-space GRASP, deterministic mu only (Fig. 6 baseline)",
                    stochastic=False),
        WeightGrasp("stochgrasp", "StochGRASP: learned Gaussian weight perturbations (eq. 5-6)"),
        PeftLibrary("lora", "LoRA via Hugging Face peft"),
        PeftLibrary("ia3", "(IA)^3 via Hugging Face peft"),
        BitFit("bitfit", "BitFit: biases only"),
        Full("full", "full fine-tuning"),
    )
}


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise ImcSimError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}") from None
