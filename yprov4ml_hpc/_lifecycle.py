"""Process hooks of an active run: SIGTERM, atexit and uncaught exceptions.

SIGTERM is what Slurm sends before SIGKILL at the time limit: we flush everything, mark the
rank file ``killed``, then let the previous handler or the default action proceed, so the
process still dies as the launcher expects.  ``atexit`` closes a run that was never ended.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import warnings
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

from . import _constants as C
from ._errors import Yprov4mlWarning

if TYPE_CHECKING:
    from ._run import Run

__all__ = ["ProcessHooks"]

_HANDLED_SIGNALS = (signal.SIGTERM,)


class ProcessHooks:
    """Installs and removes the hooks for one run."""

    def __init__(self, run: Run, install_signal_handlers: bool) -> None:
        self._run = run
        self._previous: dict[int, Any] = {}
        self._warned: set[str] = set()
        self.uncaught: BaseException | None = None
        self._previous_excepthook = sys.excepthook
        sys.excepthook = self._excepthook
        atexit.register(self._at_exit)
        if install_signal_handlers and threading.current_thread() is threading.main_thread():
            for signum in _HANDLED_SIGNALS:
                self._previous[signum] = signal.getsignal(signum)
                signal.signal(signum, self._on_signal)

    def warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(message, Yprov4mlWarning, stacklevel=2)

    def uninstall(self) -> None:
        atexit.unregister(self._at_exit)
        if sys.excepthook == self._excepthook:
            sys.excepthook = self._previous_excepthook
        if threading.current_thread() is threading.main_thread():
            for signum, previous in self._previous.items():
                if signal.getsignal(signum) == self._on_signal:
                    signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()

    # --- hooks ---------------------------------------------------------------------------------
    def _excepthook(
        self, exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
    ) -> None:
        self.uncaught = exc
        self._previous_excepthook(exc_type, exc, tb)

    def _at_exit(self) -> None:
        from ._api import _end_active

        if self._run.ended:
            return
        status = C.STATUS_FAILED if self.uncaught is not None else C.STATUS_FINISHED
        _end_active(self._run, status, "atexit (end_run was not called)")

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        store = self._run._store
        if store.held_by_current_thread() or (self._run.ended and store.is_open):
            # We interrupted our own write (or end_run's close) on this thread: let it finish,
            # then terminate when the write lock is released.
            store.deferred = lambda: self._terminate(signum, frame)
            return
        self._terminate(signum, frame)

    def _terminate(self, signum: int, frame: FrameType | None) -> None:
        from ._api import _end_active

        previous = self._previous.get(signum, signal.SIG_DFL)
        name = signal.Signals(signum).name
        _end_active(self._run, C.STATUS_KILLED, f"signal {name}")  # also uninstalls our handler
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL or previous is None:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        # SIG_IGN: the process chose to survive SIGTERM; the run is closed, the process goes on.
