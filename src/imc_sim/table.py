"""Plain-text tables for the terminal and for markdown files."""

from __future__ import annotations

from collections.abc import Sequence


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]], markdown: bool = False) -> str:
    """Columns padded to their widest cell; ``markdown`` adds pipes and a rule line."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        padded = [c.ljust(w) for c, w in zip(row, widths, strict=True)]
        lines.append("| " + " | ".join(padded) + " |" if markdown else "  ".join(padded).rstrip())
        if n == 0:
            rule = ["-" * w for w in widths]
            lines.append("|-" + "-|-".join(rule) + "-|" if markdown else "  ".join(rule))
    return "\n".join(lines)
