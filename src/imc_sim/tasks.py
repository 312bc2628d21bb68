"""The task table: one entry per GLUE task (folder, columns, labels, metric).

A new task is one more :class:`TaskSpec` in ``TASKS``. Columns name the GLUE TSV header; a task
whose files have no header (CoLA) gives column positions instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from imc_sim.errors import ImcSimError


@dataclass(frozen=True)
class TaskSpec:
    """A GLUE task as laid out in GLUE's own TSV files (``DIR/<folder>/{train,dev}.tsv``)."""

    name: str
    folder: str
    text_columns: tuple[str, ...] | tuple[int, ...]
    label_column: str | int
    labels: tuple[str, ...]
    metric_name: str
    has_header: bool = True
    dev_file: str = "dev.tsv"
    hub_dev_split: str = "validation"

    @property
    def num_labels(self) -> int:
        """1 for regression (STS-B), else the number of classes."""
        return len(self.labels)

    @property
    def is_regression(self) -> bool:
        return self.metric_name == "pearson"


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
    )
}


def get_task(name: str) -> TaskSpec:
    """Look a task up by its short name (``sst2``), or raise a one-line error."""
    try:
        return TASKS[name.lower()]
    except KeyError:
        raise ImcSimError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}") from None
