"""GLUE's own layout: ``DIR/<folder>/{train,dev}.tsv`` with GLUE's headers and label values.

Where the folder comes from, first match wins: ``--data-dir DIR``, then ``$IMC_SIM_DATA``, then
the Hugging Face datasets hub (needs ``datasets`` and a network).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from pathlib import Path

from imc_sim.data.examples import Examples
from imc_sim.data.files import file_options
from imc_sim.data.hub import import_datasets
from imc_sim.errors import ImcSimError
from imc_sim.tasks import TaskSpec

DATA_ENV = "IMC_SIM_DATA"


def resolve_data_dir(data_dir: str | os.PathLike[str] | None) -> Path | None:
    """``data_dir`` if given, else ``$IMC_SIM_DATA``, else None (meaning: the hub)."""
    chosen = data_dir if data_dir is not None else os.environ.get(DATA_ENV)
    return Path(chosen) if chosen else None


def parse_glue_label(task: TaskSpec, raw: str, where: str) -> float:
    """A GLUE label cell: a float for regression, else a class index given as index or name."""
    raw = raw.strip()
    if task.is_regression:
        try:
            return float(raw)
        except ValueError:
            raise ImcSimError(f"{where}: score {raw!r} is not a number") from None
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
            labels.append(parse_glue_label(task, row[label_idx], f"{path}:{line_no}"))
    if not texts:
        raise ImcSimError(f"{path}: no examples")
    return Examples(texts, labels)


def _load_from_hub(task: TaskSpec, split: str, limit: int | None) -> Examples:
    datasets = import_datasets(
        f"no data for {task.name}: pass --data-dir DIR (GLUE layout, DIR/{task.folder}/) or "
        f"set ${DATA_ENV}, or your own {file_options(split == 'train')}; or `pip install datasets` "
        "to download GLUE from the hub")
    hub_split = task.hub_dev_split if split == "dev" else split
    try:
        ds = datasets.load_dataset("glue", task.name, split=hub_split)
    except Exception as exc:  # the hub's errors are many and unstructured
        raise ImcSimError(f"could not load glue/{task.name} from the hub: {exc}".splitlines()[0]) from None
    columns = [c for c in ds.column_names if c not in ("label", "idx")]
    n = len(ds) if limit is None else min(limit, len(ds))
    rows = ds.select(range(n))
    to_task = _hub_label_order(task, getattr(ds.features.get("label"), "names", None))
    return Examples([tuple(r[c] for c in columns) for r in rows], [to_task(r["label"]) for r in rows])


def _hub_label_order(task: TaskSpec, hub_names: list[str] | None) -> Callable[[float], float]:
    """The hub's class index mapped by name onto the task's, which GLUE's files and checkpoints use
    (the hub orders MNLI entailment, neutral, contradiction; the task contradiction, entailment,
    neutral)."""
    if hub_names is None:
        return lambda value: value
    if sorted(hub_names) != sorted(task.labels):
        raise ImcSimError(f"glue/{task.name} on the hub has labels {hub_names}, not {list(task.labels)}")
    order = [task.labels.index(name) for name in hub_names]
    return lambda value: order[int(value)]


def check_limit(limit: int | None) -> None:
    if limit is not None and limit < 1:
        raise ImcSimError(f"example limit must be at least 1, got {limit}")


def load_split(
    task: TaskSpec, split: str, data_dir: str | os.PathLike[str] | None, limit: int | None = None
) -> Examples:
    """Load ``split`` ('train' or 'dev') of GLUE ``task``; see the module docstring for the source.
    Without one, the error names training's file options for 'train', evaluation's for 'dev'."""
    check_limit(limit)
    root = resolve_data_dir(data_dir)
    if root is None:
        return _load_from_hub(task, split, limit)
    file = task.dev_file if split == "dev" else f"{split}.tsv"
    return read_tsv(task, root / task.folder / file, limit)
