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
_SERIES_CHUNK = 1024  # points per chunk: 8 KiB per dataset; small series stay small on disk


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
        self._series: dict[tuple[str, str], h5py.Group] = {}
        self._records: dict[str, h5py.Dataset] = {}
        self.deferred: Callable[[], None] | None = None  # run once the lock is released
        self.flushes = 0
        self.flush_time_s = 0.0
        self.bytes_written = 0
        self.points = 0
        try:
            # "x": never overwrite another job's file.  locking=False because parallel file
            # systems often lack flock and readers must open files that are still being written.
            self._file = h5py.File(path, "x", locking=False)
        except (OSError, ValueError) as exc:
            raise StorageError(
                f"cannot create rank file {path}: {exc}; check that the directory is writable "
                "and that no other job uses this run directory"
            ) from exc
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
        group = self._series.get((buffer.name, buffer.context))
        if group is None:
            group = self._create_series(buffer.name, buffer.context)
        old = group["value"].shape[0]
        for key, data in (("step", steps), ("value", values), ("time_ns", times)):
            dataset = group[key]
            dataset.resize((old + count,))
            dataset[old:] = data
        self.points += count
        self.bytes_written += count * 24
        return count

    def _create_series(self, name: str, context: str) -> h5py.Group:
        metrics = self._file[METRICS_GROUP]
        ctx_key = escape_name(context)
        ctx_group = metrics.get(ctx_key)
        if ctx_group is None:
            ctx_group = metrics.create_group(ctx_key)
            ctx_group.attrs["context"] = context
        group = ctx_group.create_group(escape_name(name))
        group.attrs["name"] = name
        group.attrs["context"] = context
        for key, dtype in (("step", np.int64), ("value", np.float64), ("time_ns", np.int64)):
            group.create_dataset(key, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(_SERIES_CHUNK,))
        self._series[(name, context)] = group
        return group

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

    def flush(self, started: float) -> None:
        """Flush HDF5 buffers to the OS and account the time since ``started`` (perf_counter)."""
        self.flushes += 1
        self._file.attrs["flushes"] = self.flushes
        self._file.attrs["points"] = self.points
        self._file.attrs["bytes_written"] = self.bytes_written
        self._file.attrs["updated_ns"] = time.time_ns()
        self.flush_time_s += time.perf_counter() - started
        self._file.attrs["flush_time_s"] = self.flush_time_s
        self._file.flush()

    def close(self) -> None:
        if self.is_open:
            self._file.flush()
            self._file.close()
