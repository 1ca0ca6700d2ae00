"""Numbers, durations, sizes and times as people read them (terminal and HTML alike)."""

from __future__ import annotations

import math
import time
from typing import Any

__all__ = ["DASH", "fmt_bytes", "fmt_energy", "fmt_num", "fmt_seconds", "fmt_time"]

DASH = "\u2013"


def fmt_time(ns: int | None) -> str:
    """Local wall-clock time of a ``time_ns`` value (0 or None: unknown)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ns / 1e9)) if ns else DASH


def fmt_num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "\u2013"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return str(value)
    if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
        return f"{value:.{digits - 1}e}"
    return f"{value:.{digits}g}"


def fmt_seconds(value: Any) -> str:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return "\u2013"
    if value < 120:
        return f"{value:.3g} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.2f} h"


def fmt_bytes(value: Any) -> str:
    if not isinstance(value, (int, float)):
        return "\u2013"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def fmt_energy(joules: Any) -> str:
    """Joules with an SI prefix: a GPU job's energy spans J to GJ."""
    if not isinstance(joules, (int, float)) or not math.isfinite(joules):
        return DASH
    for unit, scale in (("GJ", 1e9), ("MJ", 1e6), ("kJ", 1e3)):
        if abs(joules) >= scale:
            return f"{joules / scale:.4g} {unit}"
    return f"{joules:.4g} J"
