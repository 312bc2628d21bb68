"""Causal language models (``--task lm``): data, perplexity and greedy continuations.

Perplexity over held-out blocks is exp(sum of next-token negative log-likelihoods / number of
predicted tokens), every token weighted alike whatever its batch; padding (label -100) is skipped.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator

import torch
from torch import nn

from imc_sim.data.corpus import (
    IGNORE,
    block_batches,
    check_lm_source,
    endless_block_batches,
    make_blocks,
    read_corpus,
)
from imc_sim.data.source import DataSource
from imc_sim.errors import ImcSimError, NonFiniteOutputs
from imc_sim.tasks import TaskSpec, get_task

EVAL_BATCH = 8
"""Blocks per evaluation batch: the logits of a batch are blocks x length x vocabulary floats."""


def checked_task(source: DataSource, model: str | None) -> TaskSpec:
    """The ``lm`` task, once its options are checked and its text files read (before any model
    is loaded, so that bad input fails at once)."""
    if model is None:
        raise ImcSimError("--task lm needs --model: a causal language model such as gpt2 or a local "
                          "GPT-2 folder (the packaged MiniLM is an encoder)")
    check_lm_source(source, training=True)
    for path in (source.train_file, source.validation_file):
        read_corpus(path)  # type: ignore[arg-type]
    return get_task("lm")


@torch.no_grad()
def check_causal(model: nn.Module, name: str) -> None:
    """One line unless ``model`` predicts each token from the tokens before it alone: the logits at
    the first position must not move when the last token changes. An encoder loaded as a causal LM
    (BERT as ``BertLMHeadModel`` without ``is_decoder``) attends both ways, and its perplexity
    would read the tokens it predicts."""
    vocab = int(model.config.vocab_size)
    device = next(model.parameters()).device
    first = torch.arange(1, 5, device=device).remainder(vocab).unsqueeze(0)
    second = first.clone()
    second[0, -1] = (first[0, -1] + 1) % vocab
    training = model.training
    model.eval()
    try:
        moved = model(input_ids=first).logits[0, 0].float() - model(input_ids=second).logits[0, 0].float()
    finally:
        model.train(training)
    if moved.abs().max() > 1e-4:
        raise ImcSimError(f"model {name!r} ({model.config.model_type}) is not causal: its prediction at "
                          "the first token changes with a later token, so its perplexity would read the "
                          "text it predicts; --task lm needs a causal language model (GPT-2, OPT, Llama)")


def check_length(model: nn.Module, length: int, what: str = "--max-length") -> None:
    """``length`` tokens must fit the model's positions (GPT-2: ``n_positions``)."""
    limit = getattr(model.config, "n_positions", None) or getattr(model.config, "max_position_embeddings",
                                                                  None)
    if limit is not None and length > limit:
        raise ImcSimError(f"{what} {length} is longer than the model's {limit} positions")


def train_stream(source: DataSource, tokenizer, block_size: int, batch_size: int, seed: int,
                 limit: int | None = None) -> Iterator[dict[str, torch.Tensor]]:
    """Endless shuffled batches of blocks of ``source.train_file`` (its first ``limit`` lines)."""
    check_lm_source(source, training=True)
    blocks = make_blocks(read_corpus(source.train_file, limit), tokenizer, block_size)  # type: ignore[arg-type]
    return endless_block_batches(blocks, batch_size, torch.Generator().manual_seed(seed))


def dev_batches(source: DataSource, tokenizer, block_size: int,
                limit: int | None = None) -> tuple[list[dict[str, torch.Tensor]], int]:
    """Batches of held-out blocks of ``source.validation_file`` (its first ``limit`` lines) and
    their number of tokens."""
    check_lm_source(source, training=False)
    blocks = make_blocks(read_corpus(source.validation_file, limit), tokenizer, block_size)  # type: ignore[arg-type]
    return block_batches(blocks, EVAL_BATCH), blocks.tokens


MAX_LOG_PERPLEXITY = math.log(sys.float_info.max)
"""The largest mean loss whose perplexity (its exponential) is a finite float."""


@torch.no_grad()
def perplexity(model: nn.Module, batch_list: list[dict[str, torch.Tensor]]) -> float:
    """exp(mean next-token negative log-likelihood) of ``model`` over every labelled token."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total = count = None
    for batch in batch_list:
        logits = model(input_ids=batch["input_ids"].to(device),
                       attention_mask=batch["attention_mask"].to(device)).logits
        gold = batch["labels"][:, 1:].to(device)
        nll = nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1).float(), gold.flatten(),
                                          ignore_index=IGNORE, reduction="sum").double()
        n = (gold != IGNORE).sum()
        total = nll if total is None else total + nll
        count = n if count is None else count + n
    model.train(was_training)
    if total is None or int(count) == 0:
        raise ImcSimError("no held-out tokens to score")
    mean = float(total) / int(count)
    if not mean < MAX_LOG_PERPLEXITY:  # NaN too
        raise NonFiniteOutputs(f"the model's outputs are NaN or infinite: mean held-out loss {mean:g}")
    return math.exp(mean)


@torch.no_grad()
def greedy_continuation(model: nn.Module, tokenizer, prompt: str, new_tokens: int) -> str:
    """The ``new_tokens`` most likely next tokens after ``prompt``, one at a time (no sampling)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    ids = torch.tensor([tokenizer(prompt, add_special_tokens=False)["input_ids"]], device=device)
    if ids.shape[1] == 0:
        raise ImcSimError(f"--prompt {prompt!r} has no tokens")
    prompt_length = ids.shape[1]
    check_length(model, prompt_length + new_tokens, f"--prompt {prompt!r} plus --generate: tokens")
    for _ in range(new_tokens):
        next_id = model(input_ids=ids).logits[:, -1].argmax(dim=-1, keepdim=True)
        ids = torch.cat([ids, next_id], dim=1)
    model.train(was_training)
    return tokenizer.decode(ids[0, prompt_length:].tolist(), skip_special_tokens=False)
