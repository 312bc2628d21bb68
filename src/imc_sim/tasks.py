"""The task table: one entry per GLUE task (folder, columns, labels, metric), ``lm`` (a causal
language model on plain text, see :mod:`imc_sim.lm`), and custom tasks.

A new GLUE-style task is one more :class:`TaskSpec` in ``TASKS``. Columns name the GLUE TSV header;
a task whose files have no header (CoLA) gives column positions instead. Users' own data (files or
a hub dataset) makes a custom task (:func:`custom_task`): its labels come from the training data,
and the checkpoint records it (:func:`task_record`, :func:`task_from_checkpoint`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from imc_sim.errors import ImcSimError


@dataclass(frozen=True)
class TaskSpec:
    """A GLUE task as laid out in GLUE's own TSV files (``DIR/<folder>/{train,dev}.tsv``), or a
    custom task (``custom``: labels, columns and header from the user's training data)."""

    name: str
    folder: str
    text_columns: tuple[str, ...] | tuple[int, ...]
    label_column: str | int
    labels: tuple[str, ...]
    metric_name: str
    has_header: bool = True
    dev_file: str = "dev.tsv"
    hub_dev_split: str = "validation"
    custom: bool = False

    @property
    def num_labels(self) -> int:
        """1 for regression (STS-B), else the number of classes."""
        return len(self.labels)

    @property
    def is_regression(self) -> bool:
        return self.metric_name == "pearson"

    @property
    def is_lm(self) -> bool:
        """A causal language model scored by perplexity on held-out text (``--task lm``)."""
        return self.metric_name == "perplexity"


TASKS: dict[str, TaskSpec] = {
    t.name: t
    for t in (
        TaskSpec("sst2", "SST-2", ("sentence",), "label", ("negative", "positive"), "accuracy"),
        TaskSpec("cola", "CoLA", (3,), 1, ("unacceptable", "acceptable"), "matthews",
                 has_header=False),
        TaskSpec("mrpc", "MRPC", ("#1 String", "#2 String"), "Quality",
                 ("not_equivalent", "equivalent"), "f1"),
        TaskSpec("qqp", "QQP", ("question1", "question2"), "is_duplicate",
                 ("not_duplicate", "duplicate"), "f1"),
        TaskSpec("stsb", "STS-B", ("sentence1", "sentence2"), "score", ("score",), "pearson"),
        TaskSpec("mnli", "MNLI", ("sentence1", "sentence2"), "gold_label",
                 ("contradiction", "entailment", "neutral"), "accuracy",
                 dev_file="dev_matched.tsv", hub_dev_split="validation_matched"),
        TaskSpec("qnli", "QNLI", ("question", "sentence"), "label",
                 ("entailment", "not_entailment"), "accuracy"),
        TaskSpec("rte", "RTE", ("sentence1", "sentence2"), "label",
                 ("entailment", "not_entailment"), "accuracy"),
        TaskSpec("wnli", "WNLI", ("sentence1", "sentence2"), "label",
                 ("not_entailment", "entailment"), "accuracy"),
        TaskSpec("lm", "", (), "", (), "perplexity", has_header=False),
    )
}


def get_task(name: str) -> TaskSpec:
    """Look a task up by its short name (``sst2``), or raise a one-line error."""
    try:
        return TASKS[name.lower()]
    except KeyError:
        raise ImcSimError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}") from None


CUSTOM = "custom"
"""The task name of users' own data (``--train-file`` or ``--dataset``)."""


def custom_task(labels: Sequence[str], text_columns: Sequence[str | int], label_column: str | int,
                has_header: bool = True) -> TaskSpec:
    """A classification task over ``labels`` (in class order), scored by accuracy."""
    return TaskSpec(CUSTOM, "", tuple(text_columns), label_column, tuple(labels),  # type: ignore[arg-type]
                    "accuracy", has_header=has_header, custom=True)


def task_record(task: TaskSpec) -> dict[str, Any]:
    """``task`` as plain data for a checkpoint (lists, strings, numbers)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(task).items()}


def task_from_checkpoint(meta: dict[str, Any]) -> TaskSpec:
    """The task a checkpoint was trained on: its recorded custom task, else the GLUE table's entry."""
    record = meta.get("task_spec")
    if not record or not record.get("custom"):
        return get_task(meta["task"])
    return custom_task(record["labels"], record["text_columns"], record["label_column"],
                       record["has_header"])
