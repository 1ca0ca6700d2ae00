"""Run: one rank's view of a provenance run, from start_run to end_run.

The hot path is :meth:`Run.log_metric`: a thread check, a dict lookup, three memoryview
stores, a clock read and an int increment.  Everything slow (validation of new series,
coercion of odd values, handing a full half-ring to the journal writer) lives in separate
methods that the hot path calls rarely.  No method of the training thread writes to disk:
the journal writer thread (``_writer.py``) does, and ``end_run`` folds the journal into the
HDF5 rank file (``_fold.py``).  Params, artifacts, models, datasets and events (cold paths that
log one record each) are in ``_run_records.py``.

Threads: the thread that called ``start_run`` logs lock-free; any other thread logs through
a lock into rings of its own (same series names), so N threads lose and duplicate nothing.
Fork: a forked child (DataLoader worker, multiprocessing pool) never writes, flushes, closes
or finalizes its parent's run; logging there raises RunStateError (see ``_forget_in_child``).
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from . import _active as _slot
from . import _constants as C
from ._buffer import MetricBuffer
from ._context import context_name
from ._describe import library_versions
from ._errors import (
    ConfigError,
    ConfigTypeError,
    RunStateError,
    StorageError,
    Yprov4mlError,
    Yprov4mlWarning,
)
from ._journal import encode_attrs, encode_record
from ._launcher import LaunchInfo, detect_launch
from ._lifecycle import ProcessHooks, block_for_fork, unblock_after_fork
from ._names import check_name
from ._run_records import RecordsMixin
from ._rundir import check_label, create_run_dir
from ._values import coerce_metric_value, coerce_step, coerce_timestamp_ns
from ._writer import JournalWriter
from ._writer_process import ProcessJournalWriter

if TYPE_CHECKING:
    from ._samplers import SamplerSet

__all__ = ["Run"]

_time_ns = time.time_ns
_get_ident = threading.get_ident
_MIN_RING = 64  # points a ring holds at least (two halves), even past the memory budget
_POINT_BYTES = 24
_PREPARED_RINGS = 16  # rings whose memory start_run makes in advance (the writer process's)
# Runs of this process, so that a forked child can disown them (os.register_at_fork below).
_LIVE_RUNS: weakref.WeakSet[Run] = weakref.WeakSet()


_END_STATUSES = (C.STATUS_FINISHED, C.STATUS_FAILED, C.STATUS_KILLED)


def check_end_options(*, finalize_timeout_s: float | None = None, prov_detail: str | None = None) -> None:
    """Refuse bad options of :meth:`Run.end` before anything is closed."""
    if prov_detail is not None and prov_detail not in C.PROV_DETAIL_CHOICES:
        raise ConfigError(f"prov_detail must be one of {C.PROV_DETAIL_CHOICES}, got {prov_detail!r}")
    if finalize_timeout_s is not None and not (
        isinstance(finalize_timeout_s, (int, float))
        and not isinstance(finalize_timeout_s, bool)
        and finalize_timeout_s >= 0
    ):
        raise ConfigError(f"finalize_timeout_s must be a number >= 0, got {finalize_timeout_s!r}")


class Run(RecordsMixin):
    """A provenance run on this rank.  Create it with :func:`yprov4ml_hpc.start_run`."""

    def __init__(
        self,
        experiment_name: str,
        *,
        provenance_save_dir: str | os.PathLike[str] = C.DEFAULT_SAVE_DIR,
        prov_user_namespace: str | None = None,
        run_id: str | None = None,
        rank: int | None = None,
        comm: Any = None,
        buffer_size: int = C.DEFAULT_BUFFER_SIZE,
        flush_interval_s: float = C.DEFAULT_FLUSH_INTERVAL_S,
        max_buffer_mb: float = 256.0,
        finalize_timeout_s: float = C.DEFAULT_FINALIZE_TIMEOUT_S,
        prov_detail: str = C.DEFAULT_PROV_DETAIL,
        install_signal_handlers: bool = True,
        system_metrics_interval_s: float = C.DEFAULT_SYSTEM_METRICS_INTERVAL_S,
        gpu_ids: Sequence[int] | None = None,
        carbon: bool = True,
        carbon_country_iso_code: str | None = None,
        carbon_region: str | None = None,
        ignored: Mapping[str, object] | None = None,
        writer: str = C.DEFAULT_JOURNAL_WRITER,
    ) -> None:
        check_label("experiment_name", experiment_name)
        if writer not in C.JOURNAL_WRITER_CHOICES:
            raise ConfigError(
                f"writer must be one of {C.JOURNAL_WRITER_CHOICES} (who writes the rank journal: a "
                f"thread of this process, or a process of its own), got {writer!r} (from start_run's "
                f"writer= or env {C.ENV_JOURNAL_WRITER})"
            )
        self.journal_writer = writer
        if isinstance(buffer_size, bool) or not isinstance(buffer_size, int) or buffer_size < 1:
            raise ConfigError(f"buffer_size must be a positive int, got {buffer_size!r}")
        if not isinstance(flush_interval_s, (int, float)) or flush_interval_s < 0:
            raise ConfigError(
                f"flush_interval_s must be a number >= 0 (0 disables the timer), got {flush_interval_s!r}"
            )
        if prov_detail not in C.PROV_DETAIL_CHOICES:
            raise ConfigError(f"prov_detail must be 'auto', 'rank' or 'job', got {prov_detail!r}")
        self.experiment = experiment_name
        self.user_namespace = prov_user_namespace
        self.buffer_size = buffer_size
        self.flush_interval_s = float(flush_interval_s)
        self.finalize_timeout_s = float(finalize_timeout_s)
        self.prov_detail = prov_detail
        # yProv4ML's start_run(metrics_file_type="csv"): CSV series written with the document.
        self.csv_metrics = False
        self.csv_separator = ","
        if not isinstance(max_buffer_mb, (int, float)) or max_buffer_mb <= 0:
            raise ConfigError(f"max_buffer_mb must be a number > 0, got {max_buffer_mb!r}")
        self._ring_budget = int(max_buffer_mb * (1 << 20))
        self.launch: LaunchInfo = detect_launch(rank, comm)
        self.run_id, self.run_dir = create_run_dir(
            Path(provenance_save_dir), experiment_name, run_id, self.launch
        )
        self.rank = self.launch.rank
        self.world_size = self.launch.world_size
        self.artifacts_dir = self.run_dir / C.ARTIFACTS_DIRNAME / f"rank_{self.rank:06d}"
        self.start_ns = _time_ns()
        self._start_perf = time.perf_counter()
        self._buffers: dict[tuple[object, object], MetricBuffer] = {}  # owner thread's rings
        self._series: dict[tuple[str, str], MetricBuffer] = {}
        self._rings: list[MetricBuffer] = []  # every ring, in creation order (the writer drains them)
        # Journal series ids: next() on a count is atomic, so rings created at once by the
        # training thread, the sampler thread and other threads (or a signal handler) never
        # share an id (``len(self._rings)`` then ``append`` let two rings take the same one).
        self._series_ids = itertools.count()
        # Rings of threads other than the owner, behind one lock (see log_metric); an RLock so
        # that a signal handler calling end_run on a thread that holds it cannot deadlock.
        self._other_lock = threading.RLock()
        self._other_buffers: dict[tuple[object, object], MetricBuffer] = {}
        self._owner_ident = _get_ident()
        self._pid = os.getpid()
        self._ring_bytes = 0
        self._other_calls = 0
        self._ended = False
        self._closing = False
        self.status = C.STATUS_RUNNING
        self._after_close: Callable[[], None] | None = None  # a signal that arrived during close
        ranks_dir = self.run_dir / C.RANKS_DIRNAME
        self.journal_path = ranks_dir / C.JOURNAL_FILE_TEMPLATE.format(rank=self.rank)
        self.h5_path = ranks_dir / C.RANK_FILE_TEMPLATE.format(rank=self.rank)
        self._warned: set[str] = set()
        writer_class = ProcessJournalWriter if self.journal_writer == "process" else JournalWriter
        try:
            self._writer: JournalWriter | ProcessJournalWriter = writer_class(
                self.journal_path,
                {"schema": C.RANK_SCHEMA, "schema_version": C.RANK_SCHEMA_VERSION,
                 **self._root_attrs(ignored or {})},
                rings=lambda: list(self._rings),
                counters=self._counter_attrs,
                warn=self._warn_once,
                flush_interval_s=self.flush_interval_s,
                max_backlog_bytes=self._ring_budget,
            )
        except OSError as exc:
            raise StorageError(
                f"cannot create rank journal {self.journal_path}: {exc}; check that the directory "
                "is writable, that there is free space, and that no other job uses this run directory"
            ) from exc
        # Memory for the first series' rings, made now rather than in their first log_metric.
        half = max((self.buffer_size + 1) // 2, 1)
        self._writer.prepare_rings(half, min(_PREPARED_RINGS, self._ring_budget // (2 * half * _POINT_BYTES)))
        self._writer.enqueue(
            encode_record(C.EVENTS_DATASET, self._record_text({"event": "start", "time_ns": self.start_ns}))
        )
        _LIVE_RUNS.add(self)
        self._hooks = ProcessHooks(self, install_signal_handlers)
        self._sampler = self._start_samplers(
            system_metrics_interval_s, gpu_ids, carbon, carbon_country_iso_code, carbon_region
        )
        self._writer.flush()
        problem = self._writer.report()
        if problem is not None:  # no room even for the first frames: fail now, not at the end
            self._ended = True
            self._sampler.stop()
            self._writer.stop(timeout=10.0)
            self._hooks.uninstall()
            _LIVE_RUNS.discard(self)
            raise StorageError(
                f"cannot write the new rank journal {self.journal_path}: {problem}; check free "
                "space and quotas"
            )

    def _root_attrs(self, ignored: Mapping[str, object]) -> dict[str, object]:
        launch = self.launch
        return {
            "run_id": self.run_id,
            "experiment": self.experiment,
            "rank": launch.rank,
            "world_size": launch.world_size,
            "local_rank": launch.local_rank,
            "local_size": launch.local_size,
            "host": launch.host,
            "pid": os.getpid(),
            "launcher": launch.launcher,
            "job_id": launch.job_id or "",
            "gpu_ids": "[]",
            "versions": library_versions(),
            "start_ns": self.start_ns,
            "end_ns": 0,
            "status": C.STATUS_RUNNING,
            "user_namespace": self.user_namespace or "",
            "command": sys.argv,
            "cwd": os.getcwd(),
            "buffer_size": self.buffer_size,
            "flush_interval_s": self.flush_interval_s,
            "finalize_timeout_s": self.finalize_timeout_s,
            "prov_detail": self.prov_detail,
            "journal_writer": self.journal_writer,
            "ignored_arguments": sorted(ignored),
            "log_calls": 0,
            "series": 0,
            "flushes": 0,
            "flush_time_s": 0.0,
            "bytes_written": 0,
            "points": 0,
        }

    def _start_samplers(
        self,
        interval_s: float,
        gpu_ids: Sequence[int] | None,
        carbon: bool,
        country: str | None,
        region: str | None,
    ) -> SamplerSet:
        """Start the background samplers (psutil, NVML, RAPL, codecarbon) of this rank."""
        from ._samplers import DEFAULT_COUNTRY_ISO_CODE, SamplerSet

        launch = self.launch
        sampler = SamplerSet(
            self.record_sample,
            interval_s=interval_s,
            local_rank=launch.local_rank,
            local_size=max(launch.local_size, launch.local_rank + 1),
            is_node_leader=launch.is_node_leader,
            gpu_ids=gpu_ids,
            carbon=carbon,
            country_iso_code=country or DEFAULT_COUNTRY_ISO_CODE,
            region=region,
        )
        sampler.start()
        self._writer.enqueue(encode_attrs(self._sampler_attrs(sampler)))
        return sampler

    @staticmethod
    def _sampler_attrs(sampler: SamplerSet) -> dict[str, object]:
        return {
            "gpu_ids": sampler.gpus,
            "sampler_info": sampler.info,
            "energy_methods": sampler.methods,
            "energy_j": sampler.energy_j(),
            "emissions_kg": sampler.emissions_kg(),
        }

    def log_system_metrics(self, context: object = None, step: int | None = None) -> None:
        """Record one sample of the system/GPU readings now, tied to ``step`` (e.g. per epoch)."""
        self._check_open("log_system_metrics")
        self._sampler.sample_now(None if context is None else context_name(context), step)

    def log_carbon_metrics(self, context: object = None, step: int | None = None) -> None:
        """Record codecarbon's cumulative energy and emissions now (node leader; needs [carbon])."""
        self._check_open("log_carbon_metrics")
        self._sampler.sample_carbon_now(None if context is None else context_name(context), step)

    # --- metrics: the hot path ---------------------------------------------------------------
    def log_metric(
        self,
        key: str,
        value: float,
        context: object = None,
        step: int | None = None,
        source: object = None,
        timestamp: float | int | None = None,
    ) -> None:
        """Record one point of the series (key, context); ``step=None`` auto-increments."""
        if _get_ident() != self._owner_ident:
            return self._log_from_other_thread(key, value, context, step, timestamp)
        try:
            buf = self._buffers.get((key, context))
        except TypeError:  # unhashable key or context: let the slow path explain
            buf = None
        if buf is None:
            buf = self._new_series(key, context)
        head = buf.head
        if head >= buf.due:
            self._hand_off(buf)
        i = head % buf.capacity
        if value.__class__ is float:
            buf.value_view[i] = value
        else:  # ints, NumPy scalars, tensors; a complex (even NumPy's) is refused there
            buf.value_view[i] = coerce_metric_value(key, value)
        if step is None:
            step = buf.next_step
        try:
            buf.step_view[i] = step
        except (TypeError, ValueError, OverflowError):
            step = coerce_step(key, step)
            buf.step_view[i] = step
        # The time before the step counter: a refused timestamp must not advance the auto step.
        buf.time_view[i] = _time_ns() if timestamp is None else coerce_timestamp_ns(key, timestamp)
        buf.next_step = step + 1
        buf.head = head + 1  # the steps of _append_point, inlined: keep the two equal

    def log_metrics(
        self, metrics: Mapping[str, float], context: object = None, step: int | None = None
    ) -> None:
        """Log several metrics at once (same context and step)."""
        if not isinstance(metrics, Mapping):
            got = type(metrics).__name__
            raise ConfigTypeError(f"log_metrics takes a mapping of name -> value, got {got}")
        if _get_ident() != self._owner_ident:
            for key, value in metrics.items():
                self._log_from_other_thread(key, value, context, step, None)
            return
        # One clock read for the call: all its points share a timestamp.  A bad entry raises
        # after the entries before it were recorded.
        now = _time_ns()
        for key, value in metrics.items():
            try:
                buf = self._buffers.get((key, context))
            except TypeError:
                buf = None
            if buf is None:
                buf = self._new_series(key, context)
            self._append_point(buf, value, step, now)

    def _append_point(self, buf: MetricBuffer, value: object, step: object, time_ns: int) -> None:
        """The ring producer, written once for the cold paths (log_metrics, the samplers, other
        threads).

        ``log_metric`` inlines these same steps (a call costs ~60 ns on its hot path);
        tests/unit/test_ring_producer.py keeps the two equal in behaviour, errors included.
        """
        head = buf.head
        if head >= buf.due:
            self._hand_off(buf)
        i = head % buf.capacity
        if value.__class__ is float:
            buf.value_view[i] = value
        else:  # as in log_metric: a NumPy complex would be cast silently by the ring
            buf.value_view[i] = coerce_metric_value(buf.name, value)
        if step is None:
            step = buf.next_step
        try:
            buf.step_view[i] = step
        except (TypeError, ValueError, OverflowError):
            step = coerce_step(buf.name, step)
            buf.step_view[i] = step
        buf.next_step = step + 1  # type: ignore[operator]  # an int: the ring accepted it
        buf.time_view[i] = time_ns
        buf.head = head + 1

    def _new_series(self, key: object, context: object) -> MetricBuffer:
        """Slow path for the first point of a series: validate, then allocate its ring."""
        self._check_open("log_metric")
        buf = self._series_buffer(check_name("metric name", key), context_name(context))
        self._buffers[(key, context)] = buf
        return buf

    def _series_buffer(self, name: str, ctx: str) -> MetricBuffer:
        """The ring of (name, ctx), allocated on first use within the memory budget."""
        buf = self._series.get((name, ctx))
        if buf is None:
            buf = self._new_ring(name, ctx)
            self._series[(name, ctx)] = buf
        return buf

    def _new_ring(self, name: str, ctx: str) -> MetricBuffer:
        # A fixed budget for all rings: past it, new series get small rings, never more memory.
        # A ring holds buffer_size points (as before the writer thread) in two halves: one
        # fills while the writer copies the other out.
        remaining = max(self._ring_budget - self._ring_bytes, 0) // (2 * _POINT_BYTES)
        wanted = max((self.buffer_size + 1) // 2, 1)
        half = max(min(wanted, remaining), min(_MIN_RING // 2, wanted))
        buf = self._writer.make_ring(name, ctx, half, next(self._series_ids))
        self._ring_bytes += buf.nbytes()
        self._rings.append(buf)
        return buf

    def _log_from_other_thread(
        self, key: str, value: float, context: object, step: int | None, timestamp: float | int | None
    ) -> None:
        """log_metric from a thread other than start_run's: one lock, rings of their own.

        The lock makes these threads one producer for their rings, so the lock-free protocol
        with the writer holds and every point is kept exactly once (in the order the lock
        admitted them).  The owner thread never takes this lock: its hot path stays lock-free.
        """
        with self._other_lock:
            self._check_open("log_metric")
            try:
                buf = self._other_buffers.get((key, context))
            except TypeError:
                buf = None
            if buf is None:
                buf = self._new_ring(check_name("metric name", key), context_name(context))
                self._other_buffers[(key, context)] = buf
            now = _time_ns() if timestamp is None else coerce_timestamp_ns(key, timestamp)
            self._append_point(buf, value, step, now)

    def record_sample(self, name: str, value: float, context: str, step: int | None, time_ns: int) -> None:
        """Write path of the background samplers (one producer thread per series)."""
        if not self._writer.alive:
            return
        # Samplers pass valid names and string contexts; their final reads arrive during close().
        buf = self._series.get((name, context)) or self._series_buffer(name, context)
        self._append_point(buf, value, step, time_ns)

    # --- flushing ----------------------------------------------------------------------------
    def log_calls(self) -> int:
        """Every API call that recorded something: metric points plus params, artifacts, ..."""
        return sum(buf.head for buf in list(self._rings)) + self._other_calls

    def _counter_attrs(self) -> dict[str, object]:
        return {"log_calls": self.log_calls(), "series": len(self._series) + len(self._other_buffers)}

    def _hand_off(self, buf: MetricBuffer) -> None:
        """A half of ``buf`` is full: give it to the writer; wait only if it is a ring behind."""
        if os.getpid() != self._pid:
            raise self._forked_error()
        writer = self._writer
        if buf.head - buf.tail >= buf.capacity:
            if not writer.alive or not writer.wait_for_room(buf):
                raise RunStateError("the run was closed (end_run or SIGTERM); start a new run")
        else:
            writer.hand_off(buf)
        # Never past tail + capacity: the slots beyond hold points the writer has not copied.
        buf.due = min(buf.head + buf.half, buf.tail + buf.capacity)

    def flush(self) -> None:
        """Write every buffered point to the rank journal now; StorageError if the disk refused.

        (Logging never raises for disk trouble: it warns once and retries at the next flush.
        This explicit call says so, because its caller asked for the data to be on disk.)
        """
        if self._ended or os.getpid() != self._pid:
            return
        self._writer.flush()
        problem = self._writer.report()
        if problem is not None:
            raise StorageError(f"writing rank journal {self.journal_path} failed: {problem}")

    def _warn_once(self, message: str) -> None:
        import warnings

        from ._errors import Yprov4mlWarning

        key = message.split(":", 1)[0]
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(message, Yprov4mlWarning, stacklevel=2)

    # --- lifecycle ---------------------------------------------------------------------------
    def _check_open(self, what: str) -> None:
        if os.getpid() != self._pid:
            raise self._forked_error()
        if self._ended:
            raise RunStateError(
                f"{what} after the run ended (status {self.status!r}); call start_run() first"
            )

    def _forked_error(self) -> RunStateError:
        return RunStateError(
            f"this process ({os.getpid()}) was forked from the process that started the run "
            f"({self._pid}): a forked child (DataLoader worker, multiprocessing pool, os.fork) never "
            "writes to its parent's run; log from the parent, or call start_run() in the child "
            "with its own rank= or run_id="
        )

    def _forget_in_child(self) -> None:
        """os.register_at_fork hook, in the child: disown the parent's run without touching it."""
        self._buffers = {}  # the next log_metric takes the slow path, which raises _forked_error
        self._other_buffers = {}
        self._writer.forget_after_fork()
        self._hooks.forget_in_child()

    @property
    def rank_file(self) -> Path:
        """This rank's file: the folded ``rank_NNNNNN.h5`` once it exists, else its journal."""
        return self.h5_path if self.h5_path.exists() else self.journal_path

    @property
    def ended(self) -> bool:
        return self._ended

    def end(
        self,
        status: str = C.STATUS_FINISHED,
        reason: str = "end_run",
        *,
        finalize: bool | None = None,
        create_graph: bool = False,
        create_svg: bool = False,
        crate_ro_crate: bool = False,
        create_card: bool = False,
        finalize_timeout_s: float | None = None,
        prov_detail: str | None = None,
        fold: bool = True,
    ) -> Path:
        """End this run: close the rank file as ``status``, then write the job's document.

        What ``end_run()``, a ``with`` block, the process hooks and the Lightning logger call.
        ``finalize`` (default: :meth:`finalizes_when`) writes the PROV document and
        summary.json; a finished run finalizes collectively on every rank, a failed or
        interrupted one on a single-rank job or on rank 0 (which waits at most
        ``finalize_timeout_s`` for the others; they, having failed, do not wait for it, and
        tell it so over MPI: it then reads their closed files without waiting).
        The options are ``end_run``'s; with the document, rank 0 also writes what
        yProv4ML's options promise (CSV series if start_run asked for them, ``card.json``,
        an RO-Crate).  ``fold=False`` (SIGTERM) leaves the complete journal for the reader
        and ``merge`` to fold (see :meth:`close`).  Ending an ended run does nothing.  Returns
        the run directory.
        """
        check_end_options(finalize_timeout_s=finalize_timeout_s, prov_detail=prov_detail)
        if status not in _END_STATUSES:
            raise ConfigError(f"status must be one of {_END_STATUSES}, got {status!r}")
        if self._ended:  # e.g. end_run() inside a `with` block: close and finalize only once
            _slot.release(self)
            return self.run_dir
        if prov_detail is not None:
            self.prov_detail = prov_detail  # close() writes it into the rank file
        from ._compat._enums import FoldOperation
        from ._compat._state import record_final_metrics

        try:
            record_final_metrics(self, FoldOperation.name_of)  # params, so before the file closes
        except Yprov4mlError as exc:  # a final value that cannot be a param must not lose the run
            warnings.warn(f"register_final_metric: {exc}", Yprov4mlWarning, stacklevel=2)
        try:
            self.close(status, reason, fold=fold)
        finally:
            _slot.release(self)
        if finalize if finalize is not None else self.finalizes_when(status):
            from ._finalize import finalize as finalize_job

            finalize_job(
                self,
                timeout_s=finalize_timeout_s,
                prov_detail=prov_detail,
                create_graph=create_graph,
                create_svg=create_svg,
            )
            from ._compat._outputs import write_end_outputs

            write_end_outputs(
                self,
                csv=self.csv_metrics,
                csv_separator=self.csv_separator,
                ro_crate=crate_ro_crate,
                card=create_card,
            )
        elif status == C.STATUS_FAILED:
            from ._finalize import tell_root_not_to_wait

            tell_root_not_to_wait(self)  # rank 0, finalizing, then reads this rank's file at once
        return self.run_dir

    def finalizes_when(self, status: str) -> bool:
        """Whether ending as ``status`` writes the document by default (see :meth:`end`).

        A failed rank other than 0 must not wait for the others (they may be stuck in a
        collective it left); rank 0 waits with the finalize timeout, so a job whose rank 0
        failed still gets its document with every other rank's status as its file says.
        """
        return status == C.STATUS_FINISHED or self.launch.world_size <= 1 or self.launch.rank == 0

    @property
    def writing_on_this_thread(self) -> bool:
        """Whether a signal handler must let a write finish first (a signal handler's question).

        The training thread never writes the journal (the writer thread does); the one write
        a signal can interrupt is the close (end_run, atexit, a user's signal handler), on this
        thread or another, which must finish before the process may die.
        """
        return self._closing

    def after_write(self, action: Callable[[], None]) -> None:
        """Run ``action`` once the close in progress has finished (and skipped the fold: the
        process is about to die, the complete journal is read and merged as it is)."""
        self._after_close = action

    def close(self, status: str, reason: str, fold: bool = True) -> None:
        """Flush everything, mark the journal with ``status``, stop the writer, fold into HDF5.

        Safe to call twice and from a signal handler (a later call does nothing).  ``fold=False``
        (SIGTERM) leaves the finished journal for the reader and ``merge`` to fold: the process
        is about to die and the launcher may SIGKILL it soon.  Raises StorageError at the end
        if some data could not be written (the run is ended anyway).
        """
        if self._ended:
            return
        if os.getpid() != self._pid:
            raise self._forked_error()
        self._ended = True
        self._buffers = {}  # a later log_metric takes the slow path, which raises RunStateError
        self._closing = True
        self.status = status
        with self._other_lock:  # a logging thread inside its write finishes it first
            pass
        self._sampler.stop()  # its final energy reads land in the rings before the last drain
        writer = self._writer
        # Every point first, then the end frames: a kill between two writer cycles must never
        # leave a final status over a journal that misses some of the points before it.
        writer.flush()
        end_ns = _time_ns()
        end_event = {"event": "end", "reason": reason, "status": status, "time_ns": end_ns}
        writer.enqueue(encode_record(C.EVENTS_DATASET, self._record_text(end_event)))
        final = {
            **self._sampler_attrs(self._sampler),
            **self._counter_attrs(),
            "status": status,
            "prov_detail": self.prov_detail,
            "end_ns": end_ns,
            "wall_time_s": (end_ns - self.start_ns) / 1e9,
        }
        writer.enqueue(encode_attrs(final))
        error: str | None = None
        try:
            writer.stop(timeout=60.0)
            error = writer.report()
            if error is None and fold and self._after_close is None:
                from ._fold import fold_journal

                try:
                    fold_journal(self.journal_path)
                except Exception as exc:  # noqa: BLE001 - the journal stays, complete and readable
                    error = (
                        f"folding the journal into {self.h5_path.name} failed ({type(exc).__name__}: "
                        f"{exc}); the journal {self.journal_path.name} is complete and readable, "
                        "`yprov4ml-hpc merge` folds it later"
                    )
        finally:
            self._closing = False
            _LIVE_RUNS.discard(self)
            self._hooks.uninstall()
            action, self._after_close = self._after_close, None
            if action is not None:  # a SIGTERM that arrived during the close
                action()
        if error is not None:
            raise StorageError(f"rank journal {self.journal_path}: {error}; the run is ended")

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        status = C.STATUS_FINISHED if exc_type is None else C.STATUS_FAILED
        if exc_type is KeyboardInterrupt:
            status = C.STATUS_KILLED
        self.end(status, f"context manager exit ({exc_type.__name__ if exc_type else 'ok'})")

    def __repr__(self) -> str:
        return (
            f"Run(experiment={self.experiment!r}, run_id={self.run_id!r}, rank={self.rank}, "
            f"world_size={self.world_size}, status={self.status!r}, run_dir='{self.run_dir}')"
        )


_fork_blocked = False


def _quiesce_writers() -> None:
    global _fork_blocked
    runs = list(_LIVE_RUNS)
    if runs:
        _fork_blocked = block_for_fork()
    for run in runs:
        run._writer.before_fork()


def _resume_writers() -> None:
    global _fork_blocked
    for run in list(_LIVE_RUNS):
        run._writer.after_fork_in_parent()
    if _fork_blocked:
        _fork_blocked = False
        unblock_after_fork()


def _forget_runs_in_child() -> None:
    global _fork_blocked
    for run in list(_LIVE_RUNS):
        run._forget_in_child()
    _LIVE_RUNS.clear()
    if _fork_blocked:
        _fork_blocked = False
        unblock_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_quiesce_writers, after_in_parent=_resume_writers, after_in_child=_forget_runs_in_child
    )
