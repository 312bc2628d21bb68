"""The dev data of a sweep plan: GLUE's layout, or the user's own validation file.

The plan's data fields mirror the data options of ``imc-sim deploy`` (``--validation-file`` is
``validation_file``, and so on); relative paths are relative to the plan's folder::

    data_dir: glue              # GLUE's layout; default $IMC_SIM_DATA, else the hub
    validation_file: dev.csv    # or own data: .csv/.tsv/.jsonl, or plain text for --task lm
    file_format: csv            # optional: csv, tsv or jsonl (default: from the extension)
    header: false               # optional: whether the first row names the columns (default: training's)
    text_column: review         # optional: a name or 0-based index, or a list of two (sentence pairs)
    label_column: sentiment     # optional (default: training's)

``data_dir`` and ``validation_file`` exclude each other. A language-model checkpoint reads a plain
text ``validation_file`` (one passage per line) and takes none of the column fields. The data is
read once when the plan is loaded, as a unit will read it (columns, labels, text), so bad input
fails before anything runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from imc_sim.data import DataSource, load_dev, resolve_data_dir
from imc_sim.data.corpus import check_labelled, check_lm_source, read_corpus
from imc_sim.data.files import FORMATS, file_format
from imc_sim.deploy.digest import sha256_bytes
from imc_sim.errors import ImcSimError
from imc_sim.tasks import TaskSpec

OWN_KEYS = ("file_format", "header", "text_column", "label_column")
DATA_KEYS = ("data_dir", "validation_file", *OWN_KEYS)


@dataclass(frozen=True)
class DataRef:
    """The plan's dev set: the source a unit reads it from (absolute paths), the file it reads
    (None: GLUE from the hub) and that file's SHA-256."""

    task: TaskSpec
    source: DataSource
    dev_file: Path | None
    dev_sha256: str | None

    def identity(self) -> dict[str, Any]:
        """What a unit's numbers depend on: the task, the file's content and, for own data, how it
        is read (format, header, columns)."""
        out: dict[str, Any] = {"task": self.task.name, "dev_sha256": self.dev_sha256}
        if self.source.kind == "files":
            s = self.source
            out["own_data"] = {"file_format": s.file_format, "header": s.header,
                               "text_column": list(s.text_columns), "label_column": s.label_column}
        return out

    def shipped(self, root: Path) -> tuple[Path, DataSource]:
        """Where a worker writes the shipped dev file under ``root``, and the source that reads it
        there (GLUE's layout, or the file under its own name)."""
        if self.dev_file is None:
            raise ValueError("the hub's dev set is not a file to ship")
        if self.source.kind == "files":
            local = root / self.dev_file.name
            return local, replace(self.source, validation_file=str(local))
        return root / self.task.folder / self.task.dev_file, replace(self.source, data_dir=str(root))


def resolve_path(base: Path, spec: str) -> Path:
    """``spec`` (``~`` expanded) if absolute, else relative to ``base`` (the plan's folder)."""
    p = Path(spec).expanduser()
    return p if p.is_absolute() else base / p


def _column(key: str, value: Any) -> str:
    """A column as the command line gives it: a name, or a 0-based index as digits."""
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        raise ImcSimError(f"{key} must be a column name or 0-based index, got {value!r}")
    if isinstance(value, int) and value < 0:
        raise ImcSimError(f"{key} = {value} must be a 0-based column index (>= 0)")
    return str(value)


def _text_columns(value: Any) -> tuple[str, ...]:
    values = value if isinstance(value, list) else [value]
    if not 1 <= len(values) <= 2:
        raise ImcSimError(f"text_column takes one column, or a list of two for sentence pairs; got {value!r}")
    return tuple(_column("text_column", v) for v in values)


def _own_source(raw: dict, file: Path, task: TaskSpec) -> DataSource:
    """The source of an own validation file for checkpoints of ``task``, its fields checked (a
    language model takes none); the file's format is resolved (it is part of the unit key)."""
    given = [k for k in OWN_KEYS if raw.get(k) is not None]
    if task.is_lm and given:
        raise ImcSimError(f"{given[0]} is for classification data; a language model reads the plain "
                          "text validation_file")
    if task.is_lm:
        return DataSource(validation_file=str(file))
    header = raw.get("header")
    if header is not None and not isinstance(header, bool):
        raise ImcSimError(f"header must be true or false, got {header!r}")
    fmt = raw.get("file_format")
    if fmt is not None and fmt not in FORMATS:
        raise ImcSimError(f"file_format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt is None:
        check_labelled(DataSource(validation_file=str(file)), task)
    text = raw.get("text_column")
    label = raw.get("label_column")
    return DataSource(validation_file=str(file), file_format=file_format(file, fmt), header=header,
                      text_columns=() if text is None else _text_columns(text),
                      label_column=None if label is None else _column("label_column", label))


def _check_read(source: DataSource, tasks: Sequence[TaskSpec], eval_limit: int | None) -> None:
    """Read the dev data as every distinct task of the plan's checkpoints will (bad input fails here)."""
    for task in dict.fromkeys(tasks):
        if task.is_lm:
            check_lm_source(source, training=False)
            read_corpus(source.validation_file, eval_limit)  # type: ignore[arg-type]
        else:
            load_dev(source, task, eval_limit)


def load_data(raw: dict, base: Path, tasks: Sequence[TaskSpec], eval_limit: int | None) -> DataRef:
    """The plan's dev set for checkpoints of ``tasks`` (one kind: all language models or none);
    errors are one :class:`ImcSimError` line naming the plan's fields."""
    for key in ("data_dir", "validation_file"):
        if raw.get(key) is not None and not (isinstance(raw[key], str) and raw[key]):
            raise ImcSimError(f"{key} must be a path, got {raw[key]!r}")
    given_dir, given_file = raw.get("data_dir"), raw.get("validation_file")
    if given_dir and given_file:
        raise ImcSimError("data_dir (GLUE's layout) and validation_file (own data) exclude each other")
    if given_file is None:
        return _glue(raw, tasks, resolve_data_dir(resolve_path(base, given_dir) if given_dir else None),
                     eval_limit)
    file = resolve_path(base, given_file)
    if not file.is_file():
        raise ImcSimError(f"validation_file {given_file} not found ({file})")
    source = _own_source(raw, file, tasks[0])
    _check_read(source, tasks, eval_limit)
    return DataRef(tasks[0], source, file, sha256_bytes(file.read_bytes()))


def _glue(raw: dict, tasks: Sequence[TaskSpec], root: Path | None, eval_limit: int | None) -> DataRef:
    """GLUE's layout at ``root`` (None: the hub), for GLUE tasks only."""
    task = tasks[0]
    if task.is_lm:
        raise ImcSimError("language-model (--task lm) checkpoints need validation_file: held-out "
                          "plain text, one passage per line")
    own = [k for k in OWN_KEYS if raw.get(k) is not None]
    if own:
        raise ImcSimError(f"{own[0]} is for own data: give validation_file")
    custom = next((t for t in tasks if t.custom), None)
    if custom is not None:
        raise ImcSimError(f"a checkpoint trained on own data (labels {', '.join(custom.labels)}) "
                          "needs validation_file")
    if root is None:
        return DataRef(task, DataSource(), None, None)
    dev_file = root / task.folder / task.dev_file
    if not dev_file.is_file():
        raise ImcSimError(f"no dev set for {task.name} at {dev_file}")
    source = DataSource(data_dir=str(root))
    _check_read(source, tasks, eval_limit)
    return DataRef(task, source, dev_file, sha256_bytes(dev_file.read_bytes()))
