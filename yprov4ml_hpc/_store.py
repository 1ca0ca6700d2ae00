"""RankStore: one rank's HDF5 file, written only by that rank.

Crash safety rests on one habit measured in DESIGN section 4: ``flush()`` after every
batch, so a process killed at any moment leaves a file readable up to its last flush.
All writes go through one lock because the training thread (full ring) and the
background flush timer may both write; the hot path never takes it.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ._buffer import MetricBuffer
from ._constants import (
    ARTIFACTS_DATASET,
    EVENTS_DATASET,
    METRICS_GROUP,
    PARAMS_DATASET,
    RANK_SCHEMA,
    RANK_SCHEMA_VERSION,
)
from ._errors import StorageError
from ._names import escape_name

__all__ = ["RankStore", "json_default"]

_STR = h5py.string_dtype("utf-8")
_RECORD_DATASETS = (PARAMS_DATASET, ARTIFACTS_DATASET, EVENTS_DATASET)
# Points per chunk, sized from a series' first batch: a series that fills its ring gets 4096
# (fewer chunks = less HDF5 metadata in memory as it grows), a trickle stays small on disk.
_MIN_CHUNK, _MAX_CHUNK = 256, 4096
# Ring-full flushes skip the counter attributes (each h5py attribute write costs ~0.1 ms)
# unless they are this old; timer flushes, records and close always write them.
_COUNTERS_MAX_AGE_S = 1.0


class _SeriesDatasets:
    """Open handles of one series' three datasets and their common length."""

    __slots__ = ("length", "step", "time_ns", "value")

    def __init__(self, group: h5py.Group) -> None:
        self.step = group["step"]
        self.value = group["value"]
        self.time_ns = group["time_ns"]
        self.length = int(self.value.shape[0])


def json_default(value: object) -> object:
    """Make NumPy scalars, paths and other odd values JSON-serialisable without losing type."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return repr(value)


def _to_attr(value: object) -> Any:
    """HDF5 attributes hold scalars and strings; anything else is stored as JSON text."""
    if isinstance(value, (bool, int, float, str, np.integer, np.floating)):
        return value
    return json.dumps(value, default=json_default)


class RankStore:
    """Append-only writer of one rank file (``ranks/rank_NNNNNN.h5``)."""

    def __init__(self, path: Path, root_attrs: Mapping[str, object]) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._owner: int | None = None  # thread ident holding the lock (see locked())
        self._series: dict[tuple[str, str], _SeriesDatasets] = {}
        self._counters_written = 0.0  # perf_counter of the last counter-attribute write
        self._records: dict[str, h5py.Dataset] = {}
        self.deferred: Callable[[], None] | None = None  # run once the lock is released
        self.flushes = 0
        self.flush_time_s = 0.0
        self.bytes_written = 0
        self.points = 0
        try:
            # "x": never overwrite another job's file.  locking=False because parallel file
            # systems often lack flock and readers must open files that are still being written.
            # rdcc_nbytes=0: we only append and never read back, and HDF5 2.x caches 8 MiB of
            # chunks per open dataset (measured: +24 MB RSS for one series) for nothing.
            self._file = h5py.File(path, "x", locking=False, rdcc_nbytes=0)
        except (OSError, ValueError) as exc:
            raise StorageError(
                f"cannot create rank file {path}: {exc}; check that the directory is writable "
                "and that no other job uses this run directory"
            ) from exc
        try:
            self._file.attrs["schema"] = RANK_SCHEMA
            self._file.attrs["schema_version"] = RANK_SCHEMA_VERSION
            for key, value in root_attrs.items():
                self._file.attrs[key] = _to_attr(value)
            self._file.create_group(METRICS_GROUP)
            for name in _RECORD_DATASETS:
                self._records[name] = self._file.create_dataset(
                    name, shape=(0,), maxshape=(None,), dtype=_STR, chunks=(64,)
                )
            self._file.flush()
            stat = os.stat(path)
        except (OSError, RuntimeError, ValueError, TypeError) as exc:
            self.abandon()
            raise StorageError(
                f"cannot write the new rank file {path}: {exc}; check free space and quotas "
                "(the file may be left incomplete)"
            ) from exc
        self.identity = (stat.st_dev, stat.st_ino)  # to notice a file deleted or replaced mid-run

    def abandon(self) -> None:
        """Close a half-made file, ignoring the errors a full disk gives on the way."""
        with contextlib.suppress(Exception):
            self._file.close()

    # --- locking ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the write lock; run a deferred action (a signal that arrived mid-write) after."""
        self._lock.acquire()
        self._owner = threading.get_ident()
        try:
            yield
        finally:
            self._owner = None
            self._lock.release()
            deferred, self.deferred = self.deferred, None
            if deferred is not None:
                deferred()

    def held_by_current_thread(self) -> bool:
        """True while this thread is inside :meth:`locked` (used by the SIGTERM handler)."""
        return self._owner == threading.get_ident()

    @property
    def is_open(self) -> bool:
        return bool(self._file.id.valid)

    # --- writes (call inside locked()) -----------------------------------------------------
    def append_series(self, buffer: MetricBuffer) -> int:
        """Drain one ring into its datasets; returns the number of points written."""
        steps, values, times = buffer.drain()
        count = int(values.shape[0])
        if count == 0:
            return 0
        series = self._series.get((buffer.name, buffer.context))
        if series is None:
            series = self._create_series(buffer.name, buffer.context, count)
        old, new = series.length, series.length + count
        for dataset, data in ((series.step, steps), (series.value, values), (series.time_ns, times)):
            dataset.resize((new,))
            dataset[old:new] = data
        series.length = new
        self.points += count
        self.bytes_written += count * 24
        return count

    def _create_series(self, name: str, context: str, first_batch: int) -> _SeriesDatasets:
        metrics = self._file[METRICS_GROUP]
        ctx_key = escape_name(context)
        ctx_group = metrics.get(ctx_key)
        if ctx_group is None:
            ctx_group = metrics.create_group(ctx_key)
            ctx_group.attrs["context"] = context
        group = ctx_group.create_group(escape_name(name))
        group.attrs["name"] = name
        group.attrs["context"] = context
        chunk = min(max(1 << (first_batch - 1).bit_length(), _MIN_CHUNK), _MAX_CHUNK)
        for key, dtype in (("step", np.int64), ("value", np.float64), ("time_ns", np.int64)):
            group.create_dataset(key, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(chunk,))
        series = _SeriesDatasets(group)
        self._series[(name, context)] = series
        return series

    def append_record(self, dataset: str, record: Mapping[str, object]) -> None:
        """Append one JSON record to ``params``, ``artifacts`` or ``events``."""
        text = json.dumps(record, default=json_default, ensure_ascii=False)
        target = self._records[dataset]
        size = target.shape[0]
        target.resize((size + 1,))
        target[size] = text
        self.bytes_written += len(text.encode("utf-8"))

    def set_attrs(self, attrs: Mapping[str, object]) -> None:
        for key, value in attrs.items():
            self._file.attrs[key] = _to_attr(value)

    def counters_due(self) -> bool:
        """Whether a ring-full flush should also refresh the counter attributes."""
        return time.perf_counter() - self._counters_written >= _COUNTERS_MAX_AGE_S

    def flush(self, started: float, counters: Mapping[str, object] | None = None) -> None:
        """Flush HDF5 buffers to the OS; with ``counters``, refresh the counter attributes first.

        ``started`` (perf_counter) is when the caller began writing: the flush time accounted
        in ``flush_time_s`` covers the whole batch.
        """
        self.flushes += 1
        if counters is not None:
            now = time.perf_counter()
            self.flush_time_s += now - started
            started = now
            self.set_attrs(
                {
                    **counters,
                    "flushes": self.flushes,
                    "points": self.points,
                    "bytes_written": self.bytes_written,
                    "updated_ns": time.time_ns(),
                    "flush_time_s": self.flush_time_s,
                }
            )
            self._counters_written = now
        self._file.flush()
        self.flush_time_s += time.perf_counter() - started

    def check_identity(self) -> None:
        """Raise StorageError if the rank file was deleted or replaced since it was created.

        HDF5 keeps writing to the open (unlinked) inode, so without this check every later
        write would silently go nowhere.
        """
        try:
            stat = os.stat(self.path)
        except OSError as exc:
            raise StorageError(
                f"rank file {self.path} is gone ({exc.strerror}): it, ranks/ or the run directory "
                "was deleted or moved while the run was writing; data written to it is lost"
            ) from exc
        if (stat.st_dev, stat.st_ino) != self.identity:
            raise StorageError(
                f"rank file {self.path} was replaced by another file while the run was writing; "
                "data written since is not in it"
            )

    def close(self) -> None:
        """Flush and close; on an error the file is still closed (as far as HDF5 can) and it raises."""
        if not self.is_open:
            return
        try:
            self._file.flush()
            self._file.close()
        except BaseException:
            self.abandon()
            raise
