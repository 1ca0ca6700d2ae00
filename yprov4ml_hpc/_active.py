"""The process's active run: the one the module-level API (``log_metric``, ``end_run`` ...)
acts on.  A slot of its own, importing nothing, so that ``Run`` can leave it when it ends
without importing the facade (``_api`` imports ``_run``, never the other way round)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._run import Run

__all__ = ["current", "lock", "release", "set_current"]

_current: Run | None = None
lock = threading.Lock()  # held by start_run while it checks the slot and creates the run


def current() -> Run | None:
    return _current


def set_current(run: Run) -> None:
    global _current
    _current = run


def release(run: Run) -> None:
    """Empty the slot if ``run`` holds it (a run ended elsewhere leaves another's slot alone)."""
    global _current
    if _current is run:
        _current = None
