"""A tiny progress bar for long CLI work (merge, plot, report over many ranks).

It draws on stderr only when stderr is a terminal, so batch logs (Slurm's ``slurm-*.out``,
CI) stay clean.  ``YPROV4ML_HPC_PROGRESS=0`` silences it on a terminal too, ``=1`` forces
it on (for screenshots and tests).  Redraws are throttled, so a loop of 10^5 ranks costs
a clock read per item, not a write.

A :class:`Progress` is also a ``(done, total, what)`` callable, the shape the merge's
progress hook takes.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import TextIO, TypeVar

__all__ = ["Progress", "progress_enabled", "track"]

ENV_PROGRESS = "YPROV4ML_HPC_PROGRESS"
_T = TypeVar("_T")
_MIN_REDRAW_S = 0.1  # ~10 redraws a second is smooth and costs nothing
_BAR_WIDTH = 28


def progress_enabled(stream: TextIO | None = None) -> bool:
    """True where a bar helps: a terminal that is not 'dumb', unless the env variable says."""
    forced = os.environ.get(ENV_PROGRESS, "").strip().lower()
    if forced in ("0", "false", "no", "off"):
        return False
    if forced in ("1", "true", "yes", "on"):
        return True
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty()) and os.environ.get("TERM", "") != "dumb"
    except (AttributeError, ValueError):  # closed or replaced stream
        return False


class Progress:
    """``with Progress(total, "reading ranks") as bar: ... bar.update()``; silent off a TTY."""

    def __init__(
        self,
        total: int | None,
        label: str = "",
        *,
        stream: TextIO | None = None,
        enabled: bool | None = None,
    ) -> None:
        self.total = total
        self.label = label
        self.done = 0
        self._stream = sys.stderr if stream is None else stream
        self.enabled = progress_enabled(self._stream) if enabled is None else enabled
        self._started = time.monotonic()
        self._last_draw = 0.0
        self._drawn = False

    def update(self, step: int = 1) -> None:
        self.done += step
        self._maybe_draw()

    def __call__(self, done: int, total: int, what: str = "") -> None:
        """The merge's hook shape: absolute progress and a word on what is counted."""
        self.done, self.total = done, total
        if what:
            self.label = what
        self._maybe_draw()

    def _maybe_draw(self) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        finished = self.total is not None and self.done >= self.total
        if now - self._last_draw < _MIN_REDRAW_S and not finished:
            return
        self._last_draw = now
        self._draw(now)

    def _draw(self, now: float) -> None:
        elapsed = now - self._started
        if self.total:
            frac = min(self.done / self.total, 1.0)
            filled = int(frac * _BAR_WIDTH)
            bar = "#" * filled + "-" * (_BAR_WIDTH - filled)
            text = f"{self.label} [{bar}] {self.done}/{self.total} {elapsed:5.1f}s"
        else:
            text = f"{self.label} {self.done} {elapsed:5.1f}s"
        # \r and clear-to-end-of-line: redraw in place without leaving fragments behind.
        self._stream.write(f"\r{text}\x1b[K")
        self._stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self.enabled and self._drawn:
            self._stream.write("\r\x1b[K")  # leave the terminal as it was: the bar disappears
            self._stream.flush()
            self._drawn = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def track(items: Iterable[_T], label: str = "", total: int | None = None) -> Iterator[_T]:
    """Iterate ``items`` with a bar on a terminal (``total`` defaults to ``len(items)``)."""
    if total is None:
        try:
            total = len(items)  # type: ignore[arg-type]
        except TypeError:
            total = None
    with Progress(total, label) as bar:
        for item in items:
            yield item
            bar.update()
