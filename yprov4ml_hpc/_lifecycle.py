"""Process hooks of an active run: SIGTERM, atexit and uncaught exceptions.

SIGTERM is what Slurm sends before SIGKILL at the time limit: we hand every ring to the
journal writer, append a ``killed`` status frame, then let the previous handler or the default
action proceed, so the process still dies as the launcher expects (the journal is folded into
HDF5 later, by the reader in memory or by ``merge``; folding here would keep a dying process
alive longer).  In an MPI job a rank that has flushed then waits in ``MPI_Finalize`` (bounded)
before it dies: mpiexec (MPICH's hydra, Open MPI) SIGKILLs every rank the moment one exits
without finalizing, which would cut a slower sibling's flush short; a rank that is ending on
SIGTERM ignores further ones (mpiexec forwards its own to every rank).  A SIGTERM that arrives
while the run is closing (end_run, atexit) waits for the close to finish, then ends the
process.  ``atexit`` closes a run that was never ended.

A forked child inherits these hooks: they do nothing there (the parent owns the run), and a
SIGTERM in the child (``Pool.terminate``) takes its previous/default action at once.
"""

from __future__ import annotations

import atexit
import contextlib
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

__all__ = ["ProcessHooks", "block_for_fork", "unblock_after_fork"]

_HANDLED_SIGNALS = (signal.SIGTERM,)


def _mpi_finalized(run: Run) -> bool:
    if run.launch.comm is None or "mpi4py.MPI" not in sys.modules:
        return False
    mpi = sys.modules["mpi4py.MPI"]
    try:
        return bool(mpi.Is_finalized())
    except Exception:  # noqa: BLE001 - a broken MPI is as good as gone
        return True


def _finalize_with_siblings(run: Run, signum: int) -> None:
    """A dying rank of an MPI job waits in MPI_Finalize until every rank has called it.

    Without this, the first rank to die ends the job: the launcher SIGKILLs its siblings at
    once, grace period or not, and the slowest one's SIGTERM flush is cut short (fault F8).
    Each rank flushed before it gets here, so once all are here all have flushed.  A sibling
    that never gets here (stuck in a collective the others left) must not keep this process
    alive: a watchdog ends it (exit status 1) after SIGTERM_SIBLINGS_WAIT_S.
    """
    if run.launch.comm is None or "mpi4py.MPI" not in sys.modules:
        return
    mpi = sys.modules["mpi4py.MPI"]
    try:
        if not mpi.Is_initialized() or mpi.Is_finalized():
            return
    except Exception:  # noqa: BLE001 - a broken MPI: just die
        return
    # The watchdog must not need the GIL: MPI_Finalize holds it while it waits.  faulthandler's
    # timer is a C thread; it ends the process with exit status 1 (its traceback goes nowhere).
    import faulthandler

    with open(os.devnull, "w") as sink:
        faulthandler.dump_traceback_later(C.SIGTERM_SIBLINGS_WAIT_S, exit=True, file=sink)
        try:
            mpi.Finalize()
        except Exception:  # noqa: BLE001 - dying anyway; the data is on disk
            pass
        finally:
            faulthandler.cancel_dump_traceback_later()


def block_for_fork() -> bool:
    """os.register_at_fork(before=...): hold SIGTERM back in the forking thread (and so in the
    child until its hooks ran).  Returns whether it blocked anything."""
    if not hasattr(signal, "pthread_sigmask"):
        return False
    signal.pthread_sigmask(signal.SIG_BLOCK, _HANDLED_SIGNALS)
    return True


def unblock_after_fork() -> None:
    """after_in_parent / after_in_child: deliver what arrived meanwhile."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _HANDLED_SIGNALS)


class ProcessHooks:
    """Installs and removes the hooks for one run."""

    def __init__(self, run: Run, install_signal_handlers: bool) -> None:
        self._run = run
        self._pid = os.getpid()
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

    def forget_in_child(self) -> None:
        """In a forked child: the hooks must never act on the parent's run.

        The handlers the child inherited are put back as they were before start_run, so a
        SIGTERM (Pool.terminate, Process.terminate) takes the kernel's default action even
        while the child waits in a lock (a Python-level handler there may never run).
        SIGTERM is blocked across the fork (block_for_fork), so one that arrives before this
        hook stays pending and is delivered to the restored handler, never lost.
        """
        self._pid = -1
        if threading.current_thread() is threading.main_thread():
            for signum, previous in self._previous.items():
                with contextlib.suppress(ValueError, OSError, TypeError):
                    signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()

    def uninstall(self) -> None:
        atexit.unregister(self._at_exit)
        if sys.excepthook == self._excepthook:
            sys.excepthook = self._previous_excepthook
        if threading.current_thread() is threading.main_thread():
            for signum, previous in self._previous.items():
                if signal.getsignal(signum) == self._on_signal:
                    signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
            self._previous.clear()
        # Elsewhere only the main thread may change handlers: ours stays installed and, the run
        # being ended, passes a signal straight on to the previous handler it remembers.

    # --- hooks ---------------------------------------------------------------------------------
    def _excepthook(
        self, exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
    ) -> None:
        self.uncaught = exc
        self._previous_excepthook(exc_type, exc, tb)

    def _at_exit(self) -> None:
        run = self._run
        if run.ended or os.getpid() != self._pid:
            return
        status = C.STATUS_FAILED if self.uncaught is not None else C.STATUS_FINISHED
        # A script that forgot end_run (or died of an exception) still gets its document, by
        # Run.end's rule; unless MPI is gone (the user or a framework finalized it): any MPI
        # call would abort the process, so the files wait for `yprov4ml-hpc merge`.
        finalize = None if not _mpi_finalized(run) else False
        run.end(status, "atexit (end_run was not called)", finalize=finalize)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Read now: closing the run uninstalls the hooks and forgets the previous handlers.
        previous = self._previous.get(signum, signal.SIG_DFL)
        if previous == self._on_signal:
            previous = signal.SIG_DFL
        if os.getpid() != self._pid:  # a forked child: not our run; act as if we were not here
            self._pass_on(signum, frame, previous)
            return
        if self._run.writing_on_this_thread:
            # The run is closing (end_run, atexit, a user's signal handler) on this or another
            # thread: the close finishes its writes, then passes the signal on.
            self._run.after_write(lambda: self._pass_on_later(signum, previous))
            return
        self._terminate(signum, frame, previous)

    def _pass_on_later(self, signum: int, previous: Any) -> None:
        """After close: a SIGTERM that arrived during it now takes its previous/default action."""
        if threading.current_thread() is threading.main_thread():
            self._pass_on(signum, None, previous)
        else:  # only the main thread may change handlers: ours runs there again and passes it on
            os.kill(os.getpid(), signum)

    def _terminate(self, signum: int, frame: FrameType | None, previous: Any) -> None:
        name = signal.Signals(signum).name
        # From here on this process is ending: a second SIGTERM must not kill it halfway.  MPICH's
        # mpiexec forwards the SIGTERM it got to every rank, so under Slurm each rank gets two,
        # the second one late on a busy node; once end_run had put the default action back it
        # killed the rank inside its wait in MPI_Finalize, unfinalized, and mpiexec then
        # SIGKILLed the siblings in the middle of their flush (fault F8).
        with contextlib.suppress(ValueError, OSError):
            signal.signal(signum, signal.SIG_IGN)
        # Flush, mark killed, no finalize: the launcher's SIGKILL follows within its grace
        # period, and waiting for other ranks could outlast it.  No fold either: the journal is
        # complete and marked killed; the reader folds it in memory, merge on disk.
        try:
            self._run.end(C.STATUS_KILLED, f"signal {name}", finalize=False, fold=False)  # uninstalls us
        finally:  # even if some data could not be written: the process must still end
            if previous == signal.SIG_DFL or previous is None:
                _finalize_with_siblings(self._run, signum)
            self._pass_on(signum, frame, previous)

    @staticmethod
    def _pass_on(signum: int, frame: FrameType | None, previous: Any) -> None:
        if callable(previous):
            with contextlib.suppress(ValueError, OSError, TypeError):  # later signals go to it again
                signal.signal(signum, previous)
            previous(signum, frame)
        elif previous == signal.SIG_DFL or previous is None:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        # SIG_IGN: the process chose to survive SIGTERM; the run is closed, the process goes on.
