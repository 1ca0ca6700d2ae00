"""Plain-text tables for the terminal commands (ls, summary, compare)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["print_table", "warn"]


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "\u2026"


def print_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    right: Sequence[int] = (),
    max_width: int = 40,
    indent: str = "  ",
) -> None:
    """Columns sized to their content (capped at ``max_width``); ``right``: right-aligned columns."""
    cells = [[_clip(str(c), max_width) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], len(c))

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(widths[i]) if i in right else v.ljust(widths[i]) for i, v in enumerate(values)]
        return (indent + "  ".join(parts)).rstrip()

    print(line(list(headers)))
    for row in cells:
        print(line(row))


def warn(command: str, message: str) -> None:
    """A warning line on stderr, in the same shape as the CLI's error lines."""
    print(f"yprov4ml-hpc {command}: warning: {message}", file=sys.stderr)
