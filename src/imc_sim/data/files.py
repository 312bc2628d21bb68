"""Users' own files: CSV, TSV or JSON lines, with or without a header row, read into a :class:`Table`.

The format follows the extension (``.csv``; ``.tsv``/``.tab``; ``.jsonl``/``.json``/``.ndjson``)
unless ``--file-format`` names it. CSV uses standard quoting; TSV has none (a tab separates, a
newline ends a row, as in GLUE's files). A JSON-lines file holds one object per line (its keys
name the columns) or one array per line (read like a CSV row). Text must be UTF-8 (a byte-order
mark is allowed).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imc_sim.documents import MalformedDocument, parse_json
from imc_sim.errors import ImcSimError

FORMATS = ("csv", "tsv", "jsonl")
EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".json": "jsonl",
              ".ndjson": "jsonl"}
MISSING = object()
"""The cell of a JSON object that lacks one of the keys (an error only if that column is used)."""


def file_options(training: bool) -> str:
    """The options that name own files: training's, or evaluation's (``--validation-file`` alone:
    ``deploy``, ``compare`` and ``sensitivity`` have no ``--train-file``)."""
    return "--train-file/--validation-file" if training else "--validation-file"


@dataclass
class Table:
    """Rows of cells from one file (or hub split): strings from CSV/TSV, JSON values from JSON.

    ``names`` are the header's column names (None without a header); ``lines`` the line number of
    each row in the file, for messages such as ``train.csv:12: ...``.
    """

    where: str
    names: list[str] | None
    rows: list[list[Any]]
    lines: list[int]

    def cell_where(self, row: int) -> str:
        return f"{self.where}:{self.lines[row]}"


def file_format(path: Path, override: str | None) -> str:
    """``override``, or the format that ``path``'s extension names."""
    if override is not None:
        if override not in FORMATS:
            raise ImcSimError(f"--file-format must be one of {', '.join(FORMATS)}, got {override!r}")
        return override
    try:
        return EXTENSIONS[path.suffix.lower()]
    except KeyError:
        raise ImcSimError(
            f"{path}: cannot tell the format from the extension {path.suffix or '(none)'!r}; "
            f"pass --file-format {'|'.join(FORMATS)}"
        ) from None


def read_text(path: Path) -> str:
    """The file's text, or a one-line error for a missing file or bytes that are not UTF-8."""
    if not path.is_file():
        raise ImcSimError(f"no data file {path}")
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ImcSimError(
            f"{path}:{line}: not UTF-8 text (byte {raw[exc.start]:#04x}); save the file as UTF-8"
        ) from None


def _delimited(path: Path, text: str, delimiter: str, header: bool) -> Table:
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting)
    rows: list[list[Any]] = []
    lines: list[int] = []
    try:
        for row in reader:
            if row and any(cell.strip() for cell in row):
                rows.append(row)
                lines.append(reader.line_num)
    except csv.Error as exc:
        raise ImcSimError(f"{path}:{reader.line_num}: not valid CSV ({exc})") from None
    names = None
    if header and rows:
        names = [str(c).strip() for c in rows.pop(0)]
        lines.pop(0)
    return Table(str(path), names, rows, lines)


def _json_lines(path: Path, text: str, header: bool) -> Table:
    values: list[Any] = []
    lines: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            values.append(parse_json(line))
        except MalformedDocument as exc:
            raise ImcSimError(f"{path}:{number}: {exc}; expected one object or array per line") from None
        lines.append(number)
    if all(isinstance(v, dict) for v in values):
        names = list(dict.fromkeys(k for v in values for k in v))
        rows = [[v.get(k, MISSING) for k in names] for v in values]
        return Table(str(path), names, rows, lines)
    if all(isinstance(v, list) for v in values):
        names = None
        if header and values:
            names = [str(c).strip() for c in values.pop(0)]
            lines.pop(0)
        return Table(str(path), names, values, lines)
    raise ImcSimError(f"{path}: each line must be a JSON object, or each line an array (not a mix "
                      "or other values)")


def read_table(path: str | Path, fmt: str | None = None, header: bool = True) -> Table:
    """Read ``path`` (format from ``fmt`` or the extension); ``header``: the first row names the
    columns (JSON objects always name theirs). A file without any example is an error."""
    path = Path(path)
    kind = file_format(path, fmt)
    text = read_text(path)
    if kind == "jsonl":
        table = _json_lines(path, text, header)
    else:
        table = _delimited(path, text, "," if kind == "csv" else "\t", header)
    if not table.rows:
        raise ImcSimError(f"{path}: no examples" + (" (only a header)" if table.names else ""))
    return table
