"""Plain-text corpora for causal language models: read, tokenize, cut into blocks, batch.

A corpus is a UTF-8 text file, one passage per non-blank line. Lines are tokenized without special
tokens, each followed by the end-of-text token (the tokenizer's EOS, else its SEP), concatenated
and cut into blocks of ``block_size`` tokens (as Hugging Face's ``run_clm``); a shorter last block
is kept and padded. Labels are the input ids with padding set to -100 (ignored by the loss); the
model shifts them by one position itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from imc_sim.data.files import EXTENSIONS, read_text
from imc_sim.data.glue import check_limit
from imc_sim.data.source import DataSource
from imc_sim.errors import ImcSimError
from imc_sim.tasks import TaskSpec

IGNORE = -100
"""Label of a position the loss skips (padding)."""


@dataclass(frozen=True)
class Corpus:
    """The non-blank lines of one text file (``where``: its path, for messages)."""

    where: str
    lines: tuple[str, ...]


@dataclass
class Blocks:
    """Token blocks of at most ``block_size`` ids (all full but perhaps the last)."""

    input_ids: list[list[int]]
    pad_id: int

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def tokens(self) -> int:
        return sum(len(b) for b in self.input_ids)


def check_text_file(path: str) -> None:
    """Refuse a labelled data file (.csv, .tsv, .jsonl) where plain text is expected."""
    suffix = Path(path).suffix.lower()
    if suffix in EXTENSIONS:
        raise ImcSimError(f"{path}: a language model reads plain text (one passage per line, e.g. a "
                          f".txt file), not a {suffix} data file")


def check_labelled(source: DataSource, task: TaskSpec) -> None:
    """Refuse a plain text file (.txt, no --file-format) for a classification task."""
    path = source.validation_file
    if path and source.file_format is None and Path(path).suffix.lower() not in EXTENSIONS:
        raise ImcSimError(f"{path}: a {task.name} checkpoint classifies labelled data (.csv, .tsv, "
                          ".jsonl); plain text is for --task lm checkpoints")


def check_lm_source(source: DataSource, training: bool) -> None:
    """The data options of a language model: text files only (--train-file when training,
    --validation-file), no columns, labels, format or hub dataset."""
    given = [flag for flag, value in (
        ("--text-column", source.text_columns), ("--label-column", source.label_column),
        ("--file-format", source.file_format), ("--header/--no-header", source.header is not None),
        ("--dataset", source.dataset), ("--data-dir", source.data_dir)) if value]
    if given:
        raise ImcSimError(f"{given[0]} is for classification data; a language model reads plain "
                          "text files (--train-file, --validation-file)")
    if training and not source.train_file:
        raise ImcSimError("--task lm needs --train-file (a plain text file, one passage per line)")
    if not source.validation_file:
        raise ImcSimError("a language model needs --validation-file (held-out plain text)")
    for path in (source.train_file if training else None, source.validation_file):
        if path:
            check_text_file(path)


def read_corpus(path: str, limit: int | None = None) -> Corpus:
    """The first ``limit`` (all when None) non-blank lines of ``path``; an empty file is an error."""
    check_limit(limit)
    lines = tuple(line.strip() for line in read_text(Path(path)).splitlines() if line.strip())
    if not lines:
        raise ImcSimError(f"{path}: empty corpus (no non-blank line)")
    return Corpus(str(path), lines[:limit])


def make_blocks(corpus: Corpus, tokenizer, block_size: int) -> Blocks:
    """Tokenize ``corpus`` and cut it into blocks of ``block_size`` tokens; a corpus shorter than
    one block is an error."""
    end = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
    if end is None:
        raise ImcSimError("the tokenizer has neither an EOS nor a SEP token to end a passage")
    ids: list[int] = []
    for line_ids in tokenizer(list(corpus.lines), add_special_tokens=False)["input_ids"]:
        ids += [*line_ids, end]
    if len(ids) < block_size:
        raise ImcSimError(f"{corpus.where}: {len(ids)} tokens, shorter than one block of "
                          f"--max-length {block_size}")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else end
    return Blocks([ids[s : s + block_size] for s in range(0, len(ids), block_size)], pad)


def collate_blocks(blocks: Blocks, index: list[int]) -> dict[str, torch.Tensor]:
    """input_ids, attention_mask and labels (ids, -100 on padding) of the blocks at ``index``."""
    width = max(len(blocks.input_ids[i]) for i in index)
    ids = torch.full((len(index), width), blocks.pad_id, dtype=torch.long)
    mask = torch.zeros((len(index), width), dtype=torch.long)
    for row, i in enumerate(index):
        n = len(blocks.input_ids[i])
        ids[row, :n] = torch.tensor(blocks.input_ids[i])
        mask[row, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, IGNORE)}


def block_batches(blocks: Blocks, batch_size: int = 32) -> list[dict[str, torch.Tensor]]:
    """Every block once, in order."""
    return [collate_blocks(blocks, list(range(s, min(s + batch_size, len(blocks)))))
            for s in range(0, len(blocks), batch_size)]


def endless_block_batches(blocks: Blocks, batch_size: int,
                          generator: torch.Generator) -> Iterator[dict[str, torch.Tensor]]:
    """Shuffled epochs of blocks one after another, for step-based training."""
    while True:
        order = torch.randperm(len(blocks), generator=generator).tolist()
        for start in range(0, len(order), batch_size):
            yield collate_blocks(blocks, order[start : start + batch_size])
