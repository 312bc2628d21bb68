"""The method table: every fine-tuning method behind one small interface.

A method builds its config from options, attaches to a freshly loaded Hugging Face model (freezing
all but its own parameters and the task head), may add a term to the loss, and merges back into a
plain Hugging Face model. LoRA and IA3 come from the Hugging Face ``peft`` library itself.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

import torch
from torch import nn

from imc_sim.backbones import HEAD_NAMES, fresh_modules
from imc_sim.errors import ImcSimError
from imc_sim.peft.grasp import GraspConfig, attach_grasp
from imc_sim.peft.inject import freeze_all_but, merge_adapters
from imc_sim.peft.lightning import (
    LightningRecipe,
    attach_lightning,
    merge_lightning,
    require_lightning,
    set_analog,
)
from imc_sim.peft.options import checked_value
from imc_sim.peft.stochgrasp import StochGraspConfig, attach_stochgrasp, sigma_penalty
from imc_sim.peft.targets import find_targets, model_type

FLAGS = {"learn_scale": "--no-scale", "learn_shift": "--no-shift"}
"""Command-line spelling of the options whose flag is not ``--`` plus the name."""


def flag(option: str) -> str:
    """The command-line flag of a method option (``lora_r`` -> ``--lora-r``)."""
    return FLAGS.get(option, "--" + option.replace("_", "-"))


def given_options(options: dict[str, Any]) -> dict[str, Any]:
    """The options actually given (None means 'not given'); the seed always applies."""
    return {k: v for k, v in options.items() if v is not None and k != "seed"}


def _fill(cls: type, options: dict[str, Any], **fixed: Any) -> dict[str, Any]:
    """``cls``'s defaults overridden by the given options (None means 'default')."""
    names = {f.name for f in fields(cls)}
    given = {k: v for k, v in options.items() if k in names and v is not None}
    return asdict(cls(**{**given, **fixed}))


@dataclass(frozen=True)
class Method:
    """One fine-tuning method: config, attach, extra loss, merge."""

    name: str
    description: str
    options: tuple[str, ...] = ()
    """The method options this method takes; any other given option is an error."""
    trains_analog: ClassVar[bool] = False
    """Whether the method's own layers are analog in training (then a digital warm-up applies
    without a device profile: :meth:`set_analog`)."""

    def check_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """``options`` with their values as the config stores them; :class:`ImcSimError` naming the
        first given option this method does not take, or a value the option cannot take
        (:mod:`imc_sim.peft.options`)."""
        for option in given_options(options):
            if option not in self.options:
                takes = ", ".join(flag(o) for o in self.options) or "no method options"
                raise ImcSimError(
                    f"{flag(option)} does not apply to --method {self.name} (it takes {takes})")
        return {k: checked_value(k, v) if v is not None else v for k, v in options.items()}

    def make_config(self, options: dict[str, Any]) -> dict[str, Any]:
        """The method's config from ``options`` (checked first: see :meth:`check_options`)."""
        return self.build_config(self.check_options(options))

    def build_config(self, options: dict[str, Any]) -> dict[str, Any]:
        return {}

    def attach(self, model: nn.Module, config: dict[str, Any]) -> nn.Module:
        raise NotImplementedError

    def extra_loss(self, model: nn.Module, config: dict[str, Any]) -> torch.Tensor | None:
        return None

    def set_analog(self, model: nn.Module, analog: bool) -> None:
        """Switch the method's analog layers on or off (digital warm-up); a no-op unless
        :attr:`trains_analog`."""

    def merge(self, model: nn.Module) -> nn.Module:
        return merge_adapters(model)

    def export(self, model: nn.Module, config: dict[str, Any]) -> tuple[str, dict[str, Any], nn.Module]:
        """What a checkpoint of the trained ``model`` stores: the method that rebuilds it, that
        method's config, and the model whose trainable parameters are saved (this one itself)."""
        return self.name, config, model


class Grasp(Method):
    def build_config(self, options: dict[str, Any]) -> dict[str, Any]:
        return _fill(GraspConfig, options)

    def attach(self, model: nn.Module, config: dict[str, Any]) -> nn.Module:
        return attach_grasp(model, GraspConfig(**config))


@dataclass(frozen=True)
class WeightGrasp(Method):
    stochastic: bool = True

    def build_config(self, options: dict[str, Any]) -> dict[str, Any]:
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

    def build_config(self, options: dict[str, Any]) -> dict[str, Any]:
        """``target_modules``: None for peft's defaults of the model type (query and value on
        BERT), else ``--targets`` as given, resolved on the model at attach (:func:`find_targets`;
        a list of names in checkpoints written before session 29, passed to peft as it is)."""
        if self.name == "lora":
            rank = options.get("lora_r")
            return {"r": 8 if rank is None else rank, "lora_alpha": 16, "lora_dropout": 0.1,
                    "target_modules": options.get("targets")}
        return {"target_modules": None}  # peft's IA3 defaults: keys, values, feed-forward

    def attach(self, model: nn.Module, config: dict[str, Any]) -> nn.Module:
        from peft import IA3Config, LoraConfig, TaskType, get_peft_model

        cls = LoraConfig if self.name == "lora" else IA3Config
        task_type = TaskType.CAUSAL_LM if model.can_generate() else TaskType.SEQ_CLS
        targets = config["target_modules"]
        resolved = find_targets(model, targets) if isinstance(targets, str) else targets
        fresh = sorted(m for m in fresh_modules(model) if m.split(".")[0] not in HEAD_NAMES)
        settings = {**config, "target_modules": resolved, **({"modules_to_save": fresh} if fresh else {})}
        try:
            return get_peft_model(model, cls(task_type=task_type, **settings))
        except ValueError as exc:
            if resolved is None and "target_modules" in str(exc):
                raise ImcSimError(f"{self.name}: peft has no default layers for model type "
                                  f"{model_type(model)!r}; give --targets (all-linear, kv-ff2, ff2 or "
                                  "module-name patterns)") from None
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


class Lightning(Method):
    """aihwkit-lightning's hardware-aware full fine-tuning (:mod:`imc_sim.peft.lightning`), saved
    as a ``full`` checkpoint of the clipped digital weights whose config is the recipe."""

    trains_analog = True

    def check_options(self, options: dict[str, Any]) -> dict[str, Any]:
        require_lightning()
        return super().check_options(options)

    def build_config(self, options: dict[str, Any]) -> dict[str, Any]:
        return _fill(LightningRecipe, options)

    def attach(self, model: nn.Module, config: dict[str, Any]) -> nn.Module:
        return attach_lightning(model, config)

    def set_analog(self, model: nn.Module, analog: bool) -> None:
        set_analog(model, analog)

    def merge(self, model: nn.Module) -> nn.Module:
        return merge_lightning(model)

    def export(self, model: nn.Module, config: dict[str, Any]) -> tuple[str, dict[str, Any], nn.Module]:
        return "full", config, merge_lightning(copy.deepcopy(model))


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Grasp("grasp", "GRASP: grouped input scale and shift (eq. 1-2)",
              ("k", "targets", "learn_scale", "learn_shift")),
        WeightGrasp("grasp-w", "weight-space GRASP, deterministic mu only (Fig. 6 baseline)",
                    ("k", "targets", "rows", "sampling"), stochastic=False),
        WeightGrasp("stochgrasp", "StochGRASP: learned Gaussian weight perturbations (eq. 5-6)",
                    ("k", "targets", "rows", "sampling", "sigma_target", "lam")),
        PeftLibrary("lora", "LoRA via Hugging Face peft", ("lora_r", "targets")),
        PeftLibrary("ia3", "(IA)^3 via Hugging Face peft"),
        BitFit("bitfit", "BitFit: biases only"),
        Full("full", "full fine-tuning"),
        Lightning("lightning", "hardware-aware full fine-tuning with aihwkit-lightning (AHWA recipe, "
                  "pcm-like; pip install imc-sim[lightning])", ("weight_noise", "clip_sigma")),
    )
}


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise ImcSimError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}") from None
