"""Where a run's examples come from: GLUE's layout, the user's own files, or a hub dataset.

``load_train`` reads the training split and, for own data, makes the task from it (its label
set); ``load_dev`` reads the dev split of a task, mapping labels onto that task's set, so that a
checkpoint deployed on a new file scores the same names as the same classes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from imc_sim.data.columns import Columns, choose_columns, column_name, text_cell
from imc_sim.data.examples import Examples
from imc_sim.data.files import Table, file_options, read_table
from imc_sim.data.glue import check_limit, load_split, resolve_data_dir
from imc_sim.data.hub import hub_table
from imc_sim.data.labels import label_index, label_set, label_texts
from imc_sim.errors import ImcSimError
from imc_sim.tasks import TaskSpec, custom_task, get_task


@dataclass(frozen=True)
class DataSource:
    """The data options of ``train``, ``deploy`` and ``compare`` (see ``imc-sim train --help``).

    ``header`` None means: a header row when training; at deploy, what the checkpoint's task had.
    Empty ``text_columns`` / None ``label_column``: the task's, or the defaults of
    :mod:`imc_sim.data.columns`.
    """

    data_dir: str | None = None
    train_file: str | None = None
    validation_file: str | None = None
    file_format: str | None = None
    header: bool | None = None
    text_columns: tuple[str, ...] = ()
    label_column: str | None = None
    dataset: str | None = None
    dataset_config: str | None = None

    def __post_init__(self) -> None:  # from Python, one column's name alone (not its characters)
        if isinstance(self.text_columns, str):
            object.__setattr__(self, "text_columns", (self.text_columns,))

    def absolute(self) -> DataSource:
        """A copy whose folder and files are absolute paths, GLUE's folder that of ``$IMC_SIM_DATA``
        where none is given: what a checkpoint records, so that a later run from another folder or
        with another ``$IMC_SIM_DATA`` finds the same training file (or none), not another one."""
        def at(path: str | os.PathLike[str] | None) -> str | None:
            return None if path is None else str(Path(path).expanduser().absolute())
        folder = resolve_data_dir(self.data_dir) if self.kind == "glue" else self.data_dir
        return replace(self, data_dir=at(folder), train_file=at(self.train_file),
                       validation_file=at(self.validation_file))

    @property
    def kind(self) -> str:
        """'files', 'hub' or 'glue'."""
        if self.train_file or self.validation_file:
            return "files"
        return "hub" if self.dataset else "glue"

    def check(self, training: bool) -> None:
        """One-line errors for options that contradict each other or are missing (naming the
        file options of training, or of evaluation: ``--validation-file`` alone)."""
        files = file_options(training)
        if self.kind == "files" and self.dataset:
            raise ImcSimError(f"--dataset and {files} exclude each other")
        if self.kind != "glue" and self.data_dir:
            raise ImcSimError(f"--data-dir (GLUE's layout) and own data ({files}, --dataset) exclude "
                              "each other")
        if self.dataset_config and not self.dataset:
            raise ImcSimError("--dataset-config needs --dataset")
        if training and self.kind == "files" and not (self.train_file and self.validation_file):
            raise ImcSimError("own files need both --train-file and --validation-file (the dev set "
                              "that training reports)")
        own = ("--text-column", "--label-column", "--file-format", "--header/--no-header")
        given = (self.text_columns, self.label_column, self.file_format, self.header is not None)
        if self.kind == "glue" and any(given):
            flag = own[[bool(g) for g in given].index(True)]
            raise ImcSimError(f"{flag} is for own data: pass {files} or --dataset")
        if len(self.text_columns) > 2:
            raise ImcSimError("--text-column takes one column, or two for sentence pairs; got "
                              f"{len(self.text_columns)}")


def _table(source: DataSource, split: str, header: bool) -> Table:
    if source.kind == "hub":
        return hub_table(source.dataset, source.dataset_config, split)  # type: ignore[arg-type]
    path = source.train_file if split == "train" else source.validation_file
    if path is None:
        raise ImcSimError("pass --validation-file (the file to evaluate on)")
    return read_table(path, source.file_format, header)


def _examples(table: Table, task: TaskSpec, columns: Columns, limit: int | None) -> Examples:
    labels = label_texts(table, columns.label, one_kind=not task.is_regression)
    n = len(table.rows) if limit is None else min(limit, len(table.rows))
    return Examples(
        [tuple(text_cell(table, r, c) for c in columns.text) for r in range(n)],
        [label_index(task, labels[r], table.cell_where(r)) for r in range(len(table.rows))][:n],
    )


def load_train(source: DataSource, task_name: str, limit: int | None = None) -> tuple[TaskSpec, Examples]:
    """The task and its training examples: GLUE task ``task_name`` in GLUE's layout, else a custom
    task whose labels are those of the training data."""
    source.check(training=True)
    check_limit(limit)
    if source.kind == "glue":
        task = get_task(task_name)
        return task, load_split(task, "train", source.data_dir, limit)
    header = source.header is not False
    table = _table(source, "train", header)
    columns = choose_columns(table, source.text_columns, source.label_column)
    labels = label_set(label_texts(table, columns.label), table.where)
    task = custom_task(labels, [column_name(table, c) for c in columns.text],
                       column_name(table, columns.label), has_header=table.names is not None)
    return task, _examples(table, task, columns, limit)


def load_dev(source: DataSource, task: TaskSpec, limit: int | None = None) -> Examples:
    """The dev examples of ``task`` from ``source``; own files default to the task's columns and
    header, and every label must be one of the task's."""
    source.check(training=False)
    check_limit(limit)
    if source.kind == "glue":
        if task.custom:
            raise ImcSimError("this checkpoint was trained on own data (labels "
                              f"{', '.join(task.labels)}): pass --validation-file or --dataset")
        return load_split(task, "dev", source.data_dir, limit)
    if source.text_columns and len(source.text_columns) != len(task.text_columns):
        trained = ", ".join(str(c) for c in task.text_columns)
        raise ImcSimError(f"--text-column: the checkpoint reads {len(task.text_columns)} text column(s) "
                          f"({trained}); got {len(source.text_columns)}")
    header = task.has_header if source.header is None else source.header
    table = _table(source, "dev", header)
    columns = choose_columns(table, source.text_columns or task.text_columns,
                             source.label_column if source.label_column is not None else task.label_column)
    return _examples(table, task, columns, limit)
