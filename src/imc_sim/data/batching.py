"""Tokenize once, then batch with dynamic padding: the dev set longest first, training length-grouped."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from imc_sim.data.examples import Examples


@dataclass
class Encoded:
    """Token ids per example (unpadded) and labels, ready for :func:`collate`."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]] | None
    labels: torch.Tensor
    pad_id: int

    def __len__(self) -> int:
        return len(self.input_ids)


def encode(examples: Examples, tokenizer, max_length: int) -> Encoded:
    """Tokenize every example once (truncated to ``max_length``, not padded)."""
    columns = list(zip(*examples.texts, strict=True))
    enc = tokenizer(*columns, truncation=True, max_length=max_length, padding=False)
    dtype = torch.float32 if isinstance(examples.labels[0], float) else torch.long
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return Encoded(
        input_ids=enc["input_ids"],
        token_type_ids=enc.get("token_type_ids"),
        labels=torch.tensor(examples.labels, dtype=dtype),
        pad_id=pad_id,
    )


def collate(encoded: Encoded, index: list[int]) -> dict[str, torch.Tensor]:
    """Pad the examples at ``index`` to the longest of them (right padding)."""
    width = max(len(encoded.input_ids[i]) for i in index)
    ids = torch.full((len(index), width), encoded.pad_id, dtype=torch.long)
    mask = torch.zeros((len(index), width), dtype=torch.long)
    types = torch.zeros((len(index), width), dtype=torch.long)
    for row, i in enumerate(index):
        n = len(encoded.input_ids[i])
        ids[row, :n] = torch.tensor(encoded.input_ids[i])
        mask[row, :n] = 1
        if encoded.token_type_ids is not None:
            types[row, :n] = torch.tensor(encoded.token_type_ids[i])
    batch = {"input_ids": ids, "attention_mask": mask, "labels": encoded.labels[index]}
    if encoded.token_type_ids is not None:
        batch["token_type_ids"] = types
    return batch


def eval_batches(encoded: Encoded, batch_size: int = 128) -> list[dict[str, torch.Tensor]]:
    """The whole split once, longest examples first, so that batches carry little padding."""
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded.input_ids[i]))
    return [collate(encoded, order[s : s + batch_size]) for s in range(0, len(order), batch_size)]


def length_grouped_order(encoded: Encoded, batch_size: int, generator: torch.Generator) -> list[int]:
    """A shuffled epoch whose batches hold examples of similar length (less padding).

    As Hugging Face's LengthGroupedSampler: shuffle, cut into mega-batches of 50 batches, sort
    each by length, cut into batches, and shuffle the batches.
    """
    order = torch.randperm(len(encoded), generator=generator).tolist()
    mega = 50 * batch_size
    chunks: list[list[int]] = []
    for start in range(0, len(order), mega):
        part = sorted(order[start : start + mega], key=lambda i: -len(encoded.input_ids[i]))
        chunks += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    return [i for c in torch.randperm(len(chunks), generator=generator).tolist() for i in chunks[c]]


def endless_batches(
    encoded: Encoded, batch_size: int, generator: torch.Generator
) -> Iterator[dict[str, torch.Tensor]]:
    """Length-grouped shuffled epochs one after another, for step-based training."""
    while True:
        order = length_grouped_order(encoded, batch_size, generator)
        for start in range(0, len(order), batch_size):
            yield collate(encoded, order[start : start + batch_size])
