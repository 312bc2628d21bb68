"""Labels of users' own data: names (``positive``) or integers (``1``), never a mix in one file.

Training fixes the label set: the distinct labels of the training file, integers in numeric order
and names in alphabetical order (so ``negative``/``positive`` are classes 0/1 whatever the row
order). The checkpoint stores it, and every later file's labels must be members of it. A GLUE
task's label set is its own (:mod:`imc_sim.tasks`); there an integer is a class index, as in
GLUE's files.
"""

from __future__ import annotations

import re
from typing import Any

from imc_sim.data.columns import cell
from imc_sim.data.files import Table
from imc_sim.data.glue import parse_glue_label
from imc_sim.errors import ImcSimError
from imc_sim.tasks import TaskSpec

INTEGER = re.compile(r"[+-]?\d+")


def is_integer(text: str) -> bool:
    return INTEGER.fullmatch(text) is not None


def label_texts(table: Table, column: int, one_kind: bool = True) -> list[str]:
    """Every row's label as text; one-line errors for an empty or non-label value or (with
    ``one_kind``: not for regression scores) a mix of integers and names."""
    texts: list[str] = []
    for row in range(len(table.rows)):
        value: Any = cell(table, row, column)
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise ImcSimError(f"{table.cell_where(row)}: label {value!r} is neither a name nor an integer")
        text = str(value).strip()
        if not text:
            raise ImcSimError(f"{table.cell_where(row)}: empty label")
        texts.append(text)
    kinds = [is_integer(t) for t in texts]
    if one_kind and any(kinds) and not all(kinds):
        first_int, first_name = kinds.index(True), kinds.index(False)
        raise ImcSimError(
            f"{table.where}: labels mix integers and names ({texts[first_int]!r} at line "
            f"{table.lines[first_int]}, {texts[first_name]!r} at line {table.lines[first_name]})")
    return texts


def label_set(texts: list[str], where: str) -> tuple[str, ...]:
    """The training labels in class order: integers numerically, names alphabetically."""
    if all(is_integer(t) for t in texts):
        labels = tuple(str(v) for v in sorted({int(t) for t in texts}))
    else:
        labels = tuple(sorted(set(texts)))
    if len(labels) < 2:
        raise ImcSimError(f"{where}: only one label ({labels[0]!r}); a classifier needs two or more")
    return labels


def label_index(task: TaskSpec, text: str, where: str) -> float:
    """The class index of ``text`` in ``task``'s label set (a float score for regression)."""
    if not task.custom:
        return parse_glue_label(task, text, where)
    key = str(int(text)) if is_integer(text) and all(map(is_integer, task.labels)) else text
    if key in task.labels:
        return task.labels.index(key)
    raise ImcSimError(f"{where}: label {text!r} was not among the training labels "
                      f"({', '.join(task.labels)})")
