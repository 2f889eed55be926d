"""Plain-text tables for the commands' reports (`microlm probe`, `microlm inspect`)."""

from __future__ import annotations

from collections.abc import Sequence


def format_table(rows: Sequence[Sequence[str]], indent: str = "  ",
                 left_columns: int = 1) -> str:
    """Words left-aligned (the first `left_columns`), numbers right-aligned, a rule under
    the header row."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]

    def line(row: Sequence[str]) -> str:
        cells = [cell.ljust(width) if i < left_columns else cell.rjust(width)
                 for i, (cell, width) in enumerate(zip(row, widths, strict=True))]
        return indent + "  ".join(cells).rstrip()

    rule = indent + "  ".join("-" * w for w in widths)
    return "\n".join([line(rows[0]), rule] + [line(row) for row in rows[1:]])
