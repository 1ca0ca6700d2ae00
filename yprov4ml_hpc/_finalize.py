"""Collective finalize: after every rank closed its file, rank 0 writes ONE document per job.

Each rank computes its own merge meta (attributes, records and a few numbers per series,
never metric values) right after closing its file, then:

- **MPI** (the launch has a communicator): point-to-point messages with rank 0 only, each
  received after a non-blocking probe, so no rank ever sits in a blocking call whose partner
  may be dead.  A rank says *hello*; rank 0 answers *ack* and the rank sends its meta; once
  every rank has said hello, or ``finalize_timeout_s`` after rank 0 arrived, rank 0 builds
  (reading from disk what it did not receive: a silent rank's file is ``incomplete``) and
  sends the result to every rank it acknowledged.  A rank that gets no ack within
  ``finalize_timeout_s`` (rank 0 never came) warns and returns.
  Why not ``Ibarrier`` then ``gather``: ranks can disagree about whether the barrier completed
  before the deadline (completion reaches them at different times), and one rank in a
  blocking ``gather`` that the others gave up on hangs forever.  With rank 0 as the only
  decider and every wait a probe loop with a deadline, nobody can hang; messages carry the
  run id, so a late message from an earlier run in the same process is ignored.
- **No MPI, several ranks** (torchrun, srun without MPI): rank 0 polls the other rank files
  until none is still ``running`` (or the timeout), then builds from disk; the others wait
  until the summary exists (rank 0 writes it last, atomically).
- **One rank**: build at once.
- **MPI finalized before end_run** (by the user or a framework): no MPI call is possible any
  more (MPICH aborts the process), so every rank takes the no-MPI path above, with a warning.

Failures never raise out of ``end_run``: the rank files are complete whatever happens here,
so a failed build is a warning that says to run ``yprov4ml-hpc merge RUN_DIR`` later.
"""

from __future__ import annotations

import importlib
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import _constants as C
from ._errors import Yprov4mlError, Yprov4mlWarning
from ._output import write_replacing

if TYPE_CHECKING:
    from ._reader import RankMeta
    from ._run import Run

__all__ = ["finalize", "tell_root_not_to_wait"]

# Tags on the user's communicator, chosen to be unlikely in user code ("YP" = 0x5950).
TAG_HELLO, TAG_ACK, TAG_META, TAG_RESULT = 0x5950, 0x5951, 0x5952, 0x5953
TAG_GONE = 0x5954  # a rank that failed and will not finalize: rank 0 reads its file instead
# How long a failed rank waits for its (small, so normally already complete) GONE send.
_GONE_SEND_WAIT_S = 1.0
_POLL_MIN_S, _POLL_MAX_S = 0.0005, 0.02
_FILE_POLL_MIN_S, _FILE_POLL_MAX_S = 0.05, 1.0

# Requests of isend must outlive the call (mpi4py keeps the pickled buffer in the request).
_pending_sends: list[Any] = []

# Without MPI, rank 0 leaves this in the run directory when its build failed, so that the other
# ranks stop waiting for a summary.json that will not come.
FINALIZE_FAILED_FILENAME = ".finalize_failed"


def _warn(message: str) -> None:
    warnings.warn(message, Yprov4mlWarning, stacklevel=4)


class _Poller:
    """Sleep a little longer each idle round: fast when messages flow, cheap when waiting."""

    def __init__(self, low: float = _POLL_MIN_S, high: float = _POLL_MAX_S) -> None:
        self.low, self.high, self.delay = low, high, low

    def idle(self) -> None:
        time.sleep(self.delay)
        self.delay = min(self.delay * 2, self.high)

    def busy(self) -> None:
        self.delay = self.low


def _own_meta(run: Run) -> RankMeta | None:
    from ._reader import read_rank_meta

    try:
        return read_rank_meta(run.rank_file, stats=True)
    except Yprov4mlError:
        return None  # rank 0 reads the file itself and reports why it is damaged


def _build(
    run: Run, metas: dict[int, RankMeta | None], started: float, options: dict[str, Any]
) -> dict[str, Any]:
    """Rank 0: the one build; returns a small, picklable result for every rank."""
    from ._merge import build

    try:
        result = build(run.run_dir, metas=metas, generated_by="finalize", started=started, **options)
    except Exception as exc:  # noqa: BLE001 - any failure here must reach every rank as a warning
        return {"run_id": run.run_id, "ok": False, "error": f"{type(exc).__name__}: {exc}"}
    for message in result.messages:
        print(f"yprov4ml_hpc: {message}", file=sys.stderr, flush=True)
    return {
        "run_id": run.run_id,
        "ok": True,
        "document": str(result.document),
        "summary": str(result.summary_path),
        "missing": [e["rank"] for e in result.summary["ranks"] if e["status"] == C.STATUS_MISSING],
    }


def _report(run: Run, result: dict[str, Any] | None, why: str = "") -> None:
    if result is None:
        _warn(
            f"rank {run.rank}: no provenance document for {run.run_dir}: {why}; the rank files are "
            f"complete, write it later with: yprov4ml-hpc merge {run.run_dir}"
        )
    elif not result["ok"]:
        _warn(
            f"rank {run.rank}: building the provenance document failed ({result['error']}); the rank "
            f"files are complete, retry with: yprov4ml-hpc merge {run.run_dir}"
        )


# --- MPI --------------------------------------------------------------------------------------
def _mpi_usable(comm: Any) -> bool:
    """False once MPI was finalized (by the user or a framework): any MPI call then makes
    MPICH abort the process, so such a finalize goes through the rank files instead."""
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is None:  # a communicator-like object without mpi4py (tests, wrappers): trust it
        return comm is not None
    try:
        return not mpi.Is_finalized()
    except Exception:  # noqa: BLE001 - a broken MPI library is as unusable as a finalized one
        return False


def _forget_finished_sends() -> None:
    """Drop the requests of earlier finalizes that completed (a process may run many runs)."""
    _pending_sends[:] = [request for request in _pending_sends if not request.Test()]


def _mpi_root(run: Run, comm: Any, timeout: float, started: float, options: dict[str, Any]) -> dict[str, Any]:
    from mpi4py import MPI

    size = comm.Get_size()
    metas: dict[int, RankMeta | None] = {0: _own_meta(run)}
    acked: set[int] = set()
    gone: set[int] = set()  # failed ranks that said so: their closed files stand in for them
    status = MPI.Status()
    deadline = time.monotonic() + timeout
    poller = _Poller()
    # Arrival phase: bounded by the timeout.  Metas of acknowledged ranks follow at once, so
    # they get a grace period beyond it (they are alive and already sending).
    while True:
        progressed = False
        while comm.iprobe(source=MPI.ANY_SOURCE, tag=TAG_HELLO, status=status):
            source = status.Get_source()
            if comm.recv(source=source, tag=TAG_HELLO) == run.run_id and source not in acked:
                acked.add(source)
                _pending_sends.append(comm.isend(run.run_id, dest=source, tag=TAG_ACK))
            progressed = True
        while comm.iprobe(source=MPI.ANY_SOURCE, tag=TAG_GONE, status=status):
            source = status.Get_source()
            if comm.recv(source=source, tag=TAG_GONE) == run.run_id:
                gone.add(source)
            progressed = True
        while comm.iprobe(source=MPI.ANY_SOURCE, tag=TAG_META, status=status):
            source = status.Get_source()
            run_id, meta = comm.recv(source=source, tag=TAG_META)
            if run_id == run.run_id:
                metas[source] = meta
            progressed = True
        now = time.monotonic()
        all_here = len(acked | gone) == size - 1
        if all(r in metas for r in acked) and (all_here or now >= deadline):
            break
        if now >= deadline + timeout:
            # An acknowledged rank sends its (precomputed) meta at once; if it has not come by
            # now the rank died or gave up in between: its file on disk stands in for it.
            break
        if progressed:
            poller.busy()
        else:
            poller.idle()
    result = _build(run, metas, started, options)
    for rank in sorted(acked):
        _pending_sends.append(comm.isend(result, dest=rank, tag=TAG_RESULT))
    return result


def _wait_for(comm: Any, tag: int, run_id: str, deadline: float) -> Any:
    """Receive the next message from rank 0 with ``tag`` for this run, or None at the deadline."""
    poller = _Poller()
    while time.monotonic() < deadline:
        if comm.iprobe(source=0, tag=tag):
            message = comm.recv(source=0, tag=tag)
            received_id = message["run_id"] if isinstance(message, dict) else message
            if received_id == run_id:
                return message
            poller.busy()  # a late message of an earlier run: drop it
            continue
        poller.idle()
    return None


def _mpi_other(run: Run, comm: Any, timeout: float) -> dict[str, Any] | None:
    meta = _own_meta(run)
    _pending_sends.append(comm.isend(run.run_id, dest=0, tag=TAG_HELLO))
    if _wait_for(comm, TAG_ACK, run.run_id, time.monotonic() + timeout) is None:
        _report(run, None, f"rank 0 did not reach end_run within finalize_timeout_s={timeout:g} s")
        return None
    _pending_sends.append(comm.isend((run.run_id, meta), dest=0, tag=TAG_META))
    result = _wait_for(
        comm, TAG_RESULT, run.run_id, time.monotonic() + timeout + C.FINALIZE_BUILD_ALLOWANCE_S
    )
    if result is None:
        _report(run, None, "rank 0 acknowledged but sent no result (did it die while building?)")
    return result


def tell_root_not_to_wait(run: Run) -> None:
    """A rank other than 0 that failed, and so does not finalize: tell rank 0 (MPI only).

    Rank 0 would otherwise wait ``finalize_timeout_s`` for it.  The message is the run id, a
    few bytes that MPI sends eagerly, so the send completes without rank 0 taking part; it
    is waited for a moment only, and never raises (the rank is failing already).  Without
    MPI, rank 0 sees the rank's file say ``failed`` and stops waiting by itself.
    """
    launch = run.launch
    if launch.world_size <= 1 or launch.rank == 0 or launch.comm is None or not _mpi_usable(launch.comm):
        return
    try:
        request = launch.comm.isend(run.run_id, dest=0, tag=TAG_GONE)
        deadline = time.monotonic() + _GONE_SEND_WAIT_S
        while not request.Test() and time.monotonic() < deadline:
            time.sleep(0.001)
        _pending_sends.append(request)  # keeps the buffer alive if it is still going
    except Exception:  # noqa: BLE001 - a failing rank must fail with its own error, not MPI's
        pass


# --- no MPI, several ranks --------------------------------------------------------------------
def _still_running(run: Run, ranks: set[int]) -> set[int]:
    """Those of ``ranks`` that have not closed their file yet, as the disk says so far.

    One folder listing per poll; only journals are opened.  A rank's ``.h5`` is written once,
    at close, complete (renamed into place), so its existence says the rank closed, whatever
    its status: at 10^4 ranks a poll does not open 10^4 HDF5 files.  A journal is read for the
    status a SIGTERM leaves in it (``killed``, not folded); a missing or unreadable file (caught
    mid-write, damaged) counts as running: look again later.
    """
    from ._reader import read_rank_attrs, scan_rank_files

    files = scan_rank_files(run.run_dir / C.RANKS_DIRNAME).by_rank
    running: set[int] = set()
    for rank in ranks:
        path = files.get(rank)
        if path is not None and path.suffix == ".h5":
            continue
        try:
            if path is None or read_rank_attrs(path).status == C.STATUS_RUNNING:
                running.add(rank)
        except Yprov4mlError:
            running.add(rank)
    return running


def _files_root(run: Run, timeout: float, started: float, options: dict[str, Any]) -> dict[str, Any]:
    waiting = set(range(1, run.world_size))
    deadline = time.monotonic() + timeout
    poller = _Poller(_FILE_POLL_MIN_S, _FILE_POLL_MAX_S)
    while waiting and time.monotonic() < deadline:
        waiting = _still_running(run, waiting)
        if waiting:
            poller.idle()
    result = _build(run, {0: _own_meta(run)}, started, options)
    if not result["ok"]:
        # The others wait for summary.json; tell them it is not coming.
        try:
            write_replacing(run.run_dir / FINALIZE_FAILED_FILENAME, result["error"] + "\n")
        except OSError:
            pass
    return result


def _files_other(run: Run, timeout: float) -> dict[str, Any] | None:
    summary = run.run_dir / C.SUMMARY_FILENAME
    deadline = time.monotonic() + 2 * timeout + C.FINALIZE_BUILD_ALLOWANCE_S
    root_deadline = time.monotonic() + timeout
    poller = _Poller(_FILE_POLL_MIN_S, _FILE_POLL_MAX_S)
    failed = run.run_dir / FINALIZE_FAILED_FILENAME
    while not summary.exists():
        if failed.exists():
            error = failed.read_text(encoding="utf-8", errors="replace").strip()
            return {"run_id": run.run_id, "ok": False, "error": error}
        now = time.monotonic()
        root_gone = now >= root_deadline and 0 in _still_running(run, {0})
        if now >= deadline or root_gone:
            _report(run, None, f"rank 0 wrote no summary within finalize_timeout_s={timeout:g} s")
            return None
        poller.idle()
    return {"run_id": run.run_id, "ok": True, "summary": str(summary)}


def finalize(
    run: Run,
    *,
    timeout_s: float | None = None,
    prov_detail: str | None = None,
    create_graph: bool = False,
    create_svg: bool = False,
) -> Path:
    """Write the job's document and summary (rank 0) and return once they exist (every rank).

    Call it on every rank right after ``run.close()``.  Returns the run directory.
    """
    started = time.perf_counter()
    timeout = run.finalize_timeout_s if timeout_s is None else float(timeout_s)
    options = {"prov_detail": prov_detail, "create_graph": create_graph, "create_svg": create_svg}
    launch = run.launch
    if launch.rank == 0 and launch.world_size > 1:
        # networkx takes ~0.2-0.3 s to import: let that overlap with waiting for the others.
        threading.Thread(
            target=importlib.import_module,
            args=("yprov4ml_hpc._merge._build",),
            name="yprov4ml-hpc-prefetch",
            daemon=True,
        ).start()
    result: dict[str, Any] | None
    comm_usable = launch.comm is not None and _mpi_usable(launch.comm)
    if launch.comm is not None and not comm_usable:
        _pending_sends.clear()  # their requests died with MPI; Test() on them would abort
        if launch.world_size > 1:
            _warn(
                f"rank {launch.rank}: MPI was finalized before end_run; finalizing through the rank "
                f"files instead (call end_run before MPI.Finalize() to keep the collective finalize)"
            )
    if launch.world_size <= 1:
        result = _build(run, {0: _own_meta(run)}, started, options)
    elif comm_usable:
        try:
            _forget_finished_sends()
            if launch.rank == 0:
                result = _mpi_root(run, launch.comm, timeout, started, options)
            else:
                result = _mpi_other(run, launch.comm, timeout)
        except Exception as exc:  # noqa: BLE001 - an MPI error (a peer died) must not escape end_run
            if launch.rank != 0:
                _report(run, None, f"MPI failed during finalize ({type(exc).__name__}: {exc})")
                return run.run_dir
            result = _build(run, {0: _own_meta(run)}, started, options)  # what the disk holds
    elif launch.rank == 0:
        result = _files_root(run, timeout, started, options)
    else:
        result = _files_other(run, timeout)
    if result is None:
        return run.run_dir  # already reported
    _report(run, result)
    return run.run_dir
