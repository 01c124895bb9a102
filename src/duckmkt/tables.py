"""Plain-text tables for the terminal, aligned for Chinese and English text."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence


def display_width(text: str) -> int:
    """Return how many terminal columns ``text`` takes (CJK characters take two)."""
    return sum(2 if unicodedata.east_asian_width(char) in ("W", "F") else 1 for char in text)


def format_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.4f}" if abs(value) < 10 else f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Return ``rows`` under ``headers`` as aligned text; numbers align right."""
    cells = [[format_cell(value) for value in row] for row in rows]
    widths = [display_width(header) for header in headers]
    for row in cells:
        widths = [max(width, display_width(cell)) for width, cell in zip(widths, row)]

    numeric = [all(isinstance(row[i], (int, float)) or row[i] is None for row in rows) for i in range(len(headers))]

    def pad(text: str, width: int, right: bool) -> str:
        fill = " " * (width - display_width(text))
        return fill + text if right else text + fill

    lines = ["  ".join(pad(header, width, is_num) for header, width, is_num in zip(headers, widths, numeric))]
    lines.append("  ".join("-" * width for width in widths))
    lines.extend("  ".join(pad(cell, width, is_num) for cell, width, is_num in zip(row, widths, numeric)) for row in cells)
    return "\n".join(lines)
