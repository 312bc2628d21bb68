"""GLUE data: read GLUE's TSV layout (or the hub), tokenize once, batch with dynamic padding.

Where the data comes from, first match wins: ``--data-dir DIR`` (``DIR/SST-2/train.tsv``), then
``$IMC_SIM_DATA`` (same layout), then the Hugging Face datasets hub (needs ``datasets`` and a
network).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from imc_sim.errors import ImcSimError
from imc_sim.tasks import TaskSpec

DATA_ENV = "IMC_SIM_DATA"


@dataclass
class Examples:
    """Raw examples of one split: one tuple of strings per example, and float/int labels."""

    texts: list[tuple[str, ...]]
    labels: list[float]


@dataclass
class Encoded:
    """Token ids per example (unpadded) and labels, ready for :func:`batches`."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]] | None
    labels: torch.Tensor
    pad_id: int

    def __len__(self) -> int:
        return len(self.input_ids)


def resolve_data_dir(data_dir: str | os.PathLike[str] | None) -> Path | None:
    """``data_dir`` if given, else ``$IMC_SIM_DATA``, else None (meaning: the hub)."""
    chosen = data_dir if data_dir is not None else os.environ.get(DATA_ENV)
    return Path(chosen) if chosen else None


def _parse_label(task: TaskSpec, raw: str, where: str) -> float:
    raw = raw.strip()
    if task.is_regression:
        return float(raw)
    if raw.isdigit() and int(raw) < task.num_labels:
        return int(raw)
    if raw in task.labels:
        return task.labels.index(raw)
    raise ImcSimError(f"{where}: label {raw!r} is not one of {list(task.labels)}")


def read_tsv(task: TaskSpec, path: Path, limit: int | None = None) -> Examples:
    """Read one GLUE TSV file: header-named (or positional, CoLA) text and label columns."""
    if not path.is_file():
        raise ImcSimError(f"no data file {path} (expected GLUE's layout DIR/{task.folder}/...)")
    texts: list[tuple[str, ...]] = []
    labels: list[float] = []
    with path.open(encoding="utf-8", newline="") as fh:
        rows = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        if task.has_header:
            header = next(rows, [])
            try:
                text_idx = [header.index(c) for c in task.text_columns]  # type: ignore[arg-type]
                label_idx = header.index(task.label_column)  # type: ignore[arg-type]
            except ValueError:
                raise ImcSimError(
                    f"{path}: header {header} lacks the columns "
                    f"{list(task.text_columns)} + {task.label_column!r}"
                ) from None
        else:
            text_idx = list(task.text_columns)  # type: ignore[arg-type]
            label_idx = task.label_column  # type: ignore[assignment]
        for line_no, row in enumerate(rows, start=2 if task.has_header else 1):
            if limit is not None and len(texts) >= limit:
                break
            if len(row) <= max([label_idx, *text_idx]):
                raise ImcSimError(f"{path}:{line_no}: expected more columns, got {len(row)}")
            texts.append(tuple(row[i] for i in text_idx))
            labels.append(_parse_label(task, row[label_idx], f"{path}:{line_no}"))
    if not texts:
        raise ImcSimError(f"{path}: no examples")
    return Examples(texts, labels)


def _load_from_hub(task: TaskSpec, split: str, limit: int | None) -> Examples:
    try:
        import datasets
    except ImportError:
        raise ImcSimError(
            f"no data for {task.name}: pass --data-dir DIR (GLUE layout, DIR/{task.folder}/) or "
            f"set ${DATA_ENV}; or `pip install datasets` to download from the hub"
        ) from None
    hub_split = task.hub_dev_split if split == "dev" else split
    try:
        ds = datasets.load_dataset("glue", task.name, split=hub_split)
    except Exception as exc:  # the hub's errors are many and unstructured
        raise ImcSimError(f"could not load glue/{task.name} from the hub: {exc}") from None
    columns = [c for c in ds.column_names if c not in ("label", "idx")]
    n = len(ds) if limit is None else min(limit, len(ds))
    rows = ds.select(range(n))
    return Examples([tuple(r[c] for c in columns) for r in rows], [r["label"] for r in rows])


def load_split(
    task: TaskSpec, split: str, data_dir: str | os.PathLike[str] | None, limit: int | None = None
) -> Examples:
    """Load ``split`` ('train' or 'dev') of ``task``; see the module docstring for the source."""
    if limit is not None and limit < 1:
        raise ImcSimError(f"example limit must be at least 1, got {limit}")
    root = resolve_data_dir(data_dir)
    if root is None:
        return _load_from_hub(task, split, limit)
    file = task.dev_file if split == "dev" else f"{split}.tsv"
    return read_tsv(task, root / task.folder / file, limit)


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


def batches(
    encoded: Encoded, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None
) -> Iterator[dict[str, torch.Tensor]]:
    """One pass over ``encoded`` in batches; shuffled with ``generator`` when ``shuffle``."""
    order = (
        torch.randperm(len(encoded), generator=generator).tolist()
        if shuffle
        else list(range(len(encoded)))
    )
    for start in range(0, len(order), batch_size):
        yield collate(encoded, order[start : start + batch_size])


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
