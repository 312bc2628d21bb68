"""Which cells of a :class:`Table` hold the text(s) and the label.

A column is named by the header (``sentence``) or by its 0-based position (``1``); a file without
a header row only has positions. Without ``--label-column`` the label is the column ``label``;
without ``--text-column`` the text is every other column, when there are one or two of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from imc_sim.data.files import MISSING, Table
from imc_sim.errors import ImcSimError

DEFAULT_LABEL = "label"
ROW_NUMBER_NAMES = ("", "id", "idx", "index")


@dataclass
class Columns:
    """Positions of the text column(s) and of the label column in a table's rows."""

    text: list[int]
    label: int


def _resolve(table: Table, spec: str | int, flag: str) -> int:
    if isinstance(spec, int):
        return spec
    if table.names is not None and spec in table.names:
        return table.names.index(spec)
    if spec.isdigit():
        return int(spec)
    if table.names is None:
        raise ImcSimError(f"{table.where} has no header row (--no-header): give {flag} as a "
                          f"0-based column index, not the name {spec!r}")
    raise ImcSimError(f"{table.where}: no column {spec!r} (columns: {', '.join(table.names)}); a "
                      f"file without a header row needs --no-header and {flag} as 0-based indices")


def _width(table: Table) -> int:
    return len(table.names) if table.names is not None else len(table.rows[0])


def _is_row_number(table: Table, index: int) -> bool:
    named = table.names is not None and table.names[index].lower() in ROW_NUMBER_NAMES
    first = table.rows[0][index] if index < len(table.rows[0]) else None
    return named or (isinstance(first, int) and not isinstance(first, bool))


def choose_columns(table: Table, text: Sequence[str | int], label: str | int | None) -> Columns:
    """Resolve the text and label column specs (see the module docstring for the defaults)."""
    if label is None:
        if table.names is None:
            raise ImcSimError(f"{table.where} has no header row: pass --label-column and "
                              "--text-column as 0-based column indices")
        label = DEFAULT_LABEL
    label_at = _resolve(table, label, "--label-column")
    if text:
        text_at = [_resolve(table, spec, "--text-column") for spec in text]
    else:
        text_at = [i for i in range(_width(table)) if i != label_at and not _is_row_number(table, i)]
        if len(text_at) not in (1, 2):
            shown = ", ".join(map(str, table.names or range(_width(table))))
            raise ImcSimError(f"{table.where}: pass --text-column (one column, or two for sentence "
                              f"pairs); the columns are {shown}")
    if len(text_at) > 2:
        raise ImcSimError(f"--text-column takes one column, or two for sentence pairs; got {len(text_at)}")
    if label_at in text_at:
        raise ImcSimError(f"{table.where}: column {label!r} is both the label and a text column")
    return Columns(text_at, label_at)


def column_name(table: Table, index: int) -> str | int:
    """How a checkpoint records a column: its header name, or its position without a header."""
    return table.names[index] if table.names is not None and index < len(table.names) else index


def cell(table: Table, row: int, index: int) -> Any:
    """One cell, or a one-line error naming the line when the row is too short or lacks it."""
    cells = table.rows[row]
    if index >= len(cells) or cells[index] is MISSING:
        raise ImcSimError(f"{table.cell_where(row)}: no column {column_name(table, index)!r} in "
                          f"this row ({len(cells)} columns)")
    return cells[index]


def text_cell(table: Table, row: int, index: int) -> str:
    value = cell(table, row, index)
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise ImcSimError(f"{table.cell_where(row)}: column {column_name(table, index)!r} holds "
                      f"{value!r}, not text")
