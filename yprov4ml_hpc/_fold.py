"""Fold a rank journal into the HDF5 rank file layout (DESIGN section 4).

One function, :func:`write_layout`, turns a journal's good frames into the layout every
reader, merge and CLI path knows; it serves three callers:

- ``end_run``/atexit (and ``merge`` for a rank that died): :func:`fold_journal` writes
  ``rank_NNNNNN.h5`` under a temporary name, fsyncs it, renames it into place atomically and
  then removes the journal.  If both files exist, the .h5 wins: it was complete before the
  rename.
- the reader, for a rank still running or one that died: :func:`fold_to_memory` builds the
  same file in memory (HDF5 core driver, no backing store), so finished, running and crashed
  ranks are read by one code path.

Since every array is in memory here, the layout also gets its metadata record (``/meta``,
``_meta_record.py``): the root attributes, each series' statistics and the records in one JSON
text, so that reading a rank for a merge is one read instead of one per attribute and point.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from . import _constants as C
from ._journal import RECORD_DATASETS, JournalContents, json_default, read_journal
from ._meta_record import MetaRecordError, RecordSeries, encode_meta_record, plain_attr
from ._names import escape_name
from ._series_stats import SeriesStats

__all__ = ["fold_ended_journals", "fold_journal", "fold_to_memory", "h5_path_for", "to_attr", "write_layout"]

_STR = h5py.string_dtype("utf-8")
# Points per chunk: 4096 for a long series (fewer chunks, less HDF5 metadata), a trickle stays small.
_MIN_CHUNK, _MAX_CHUNK = 256, 4096
_SERIES_DATASETS = (("step", np.int64), ("value", np.float64), ("time_ns", np.int64))
_memory_names = itertools.count()


def to_attr(value: object) -> Any:
    """HDF5 attributes hold scalars and strings; anything else is stored as JSON text."""
    if isinstance(value, (bool, int, float, str, np.integer, np.floating)):
        if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
            return json.dumps(value)  # HDF5 has no integer wider than 64 bits
        return value
    return json.dumps(value, default=json_default)


def h5_path_for(journal: Path) -> Path:
    """``rank_NNNNNN.journal`` -> ``rank_NNNNNN.h5`` (same folder)."""
    return journal.with_name(journal.name[: -len(C.JOURNAL_SUFFIX)] + C.RANK_FILE_SUFFIX)


def write_layout(contents: JournalContents, handle: h5py.File) -> None:
    """Write the journal's contents into an empty HDF5 file in the rank-file layout, and the
    metadata record (``_meta_record.py``) that lets a reader skip the layout."""
    handle.attrs["schema"] = C.RANK_SCHEMA
    handle.attrs["schema_version"] = C.RANK_SCHEMA_VERSION
    for key, value in contents.attrs.items():
        if key not in ("schema", "schema_version"):
            handle.attrs[key] = to_attr(value)
    metrics = handle.create_group(C.METRICS_GROUP)
    series: dict[tuple[bytes, bytes], RecordSeries] = {}
    for (name, context), batches in contents.series.items():
        ctx_key, name_key = escape_name(context), escape_name(name)
        ctx_group = metrics.get(ctx_key)
        if ctx_group is None:
            ctx_group = metrics.create_group(ctx_key)
            ctx_group.attrs["context"] = context
        group = ctx_group.create_group(name_key)
        group.attrs["name"] = name
        group.attrs["context"] = context
        count = sum(int(b[1].shape[0]) for b in batches)
        chunk = min(max(1 << max(count - 1, 0).bit_length(), _MIN_CHUNK), _MAX_CHUNK)
        arrays: list[Any] = []
        for index, (key, dtype) in enumerate(_SERIES_DATASETS):
            data = np.concatenate([b[index] for b in batches]) if batches else np.empty(0, dtype=dtype)
            arrays.append(data.astype(dtype, copy=False))
            group.create_dataset(key, data=arrays[-1], maxshape=(None,), chunks=(chunk,))
        # The statistics a reader would compute from these very arrays (one function for both).
        count = min(int(a.shape[0]) for a in arrays)
        stats = SeriesStats.of(arrays[0][:count], arrays[1][:count], arrays[2][:count])
        # HDF5 lists a group's links by name, byte for byte (strcmp): the reader's order.
        series[ctx_key.encode(), name_key.encode()] = RecordSeries(name, context, group.name, count, stats)
    for dataset in RECORD_DATASETS:
        texts = np.array(contents.records[dataset], dtype=object).reshape(-1)
        handle.create_dataset(dataset, data=texts, dtype=_STR, maxshape=(None,), chunks=(64,))
    # The attributes as a reader reads them back (not as given): the record must say the same.
    attrs = {key: plain_attr(value) for key, value in handle.attrs.items()}
    try:
        record = encode_meta_record(attrs, [series[key] for key in sorted(series)], contents.records)
    except MetaRecordError:
        return  # an attribute the record cannot hold: readers read the layout, complete without it
    handle.create_dataset(C.META_DATASET, data=record, dtype=_STR)


def fold_to_memory(journal: Path, contents: JournalContents | None = None) -> h5py.File:
    """The journal (or ``contents`` already read from it) as an in-memory HDF5 rank file
    (nothing is written to disk)."""
    if contents is None:
        contents = read_journal(journal)
    # The core driver keys open files by name: a unique one per fold, never created on disk.
    name = f"{journal}.fold-{os.getpid()}-{next(_memory_names)}"
    handle = h5py.File(name, "w", driver="core", backing_store=False)
    try:
        write_layout(contents, handle)
        handle.flush()
    except BaseException:
        handle.close()
        raise
    return handle


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # some file systems refuse fsync on a directory
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def fold_journal(journal: Path, contents: JournalContents | None = None) -> Path:
    """Fold ``journal`` into its .h5 rank file atomically, then remove the journal.

    Raises OSError (or h5py's errors) if the .h5 cannot be written; the journal is then left
    as it is, still readable.  Returns the path of the .h5 file.
    """
    target = h5_path_for(journal)
    if contents is None:
        contents = read_journal(journal)
    # A leading dot: never matched as a rank file by a reader scanning the folder.
    temp = journal.with_name(f".{target.name}.tmp-{os.getpid()}-{next(_memory_names)}")
    try:
        with h5py.File(temp, "x", locking=False) as handle:
            write_layout(contents, handle)
        fd = os.open(temp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    _fsync_dir(target.parent)
    with contextlib.suppress(FileNotFoundError):
        journal.unlink()
    return target


def _writer_gone(attrs: dict[str, Any]) -> bool:
    """Whether no process can still append to this journal: its status says it ended, or it
    says ``running`` but its process (on this host) no longer exists."""
    status = attrs.get("status")
    if status in (C.STATUS_FINISHED, C.STATUS_FAILED, C.STATUS_KILLED):
        return True
    import socket

    pid = attrs.get("pid")
    if attrs.get("host") != socket.gethostname() or type(pid) is not int or pid <= 0:
        return False  # another node's rank: it may still be writing
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def fold_ended_journals(journals: Iterable[Path]) -> list[tuple[str, str]]:
    """``merge``: fold the journals of ranks that died (SIGTERM, SIGKILL, a full disk) into
    their .h5, leaving journals that may still be written.  ``journals`` come from the reader's
    scan (``_reader.scan_rank_files``: a journal whose .h5 exists is not among them).  Returns
    (journal, outcome) pairs; a journal that cannot be folded stays as it is (the reader reads
    it), and one that is not a regular file (a planted FIFO or link) is never opened."""
    outcomes = []
    for journal in journals:
        try:
            if not stat.S_ISREG(journal.lstat().st_mode):
                outcomes.append((journal.name, "not folded (not a regular file)"))
                continue
            if h5_path_for(journal).exists():
                continue
            contents = read_journal(journal)
            if not _writer_gone(contents.attrs):
                continue
            fold_journal(journal, contents)
            outcomes.append((journal.name, "folded"))
        except Exception as exc:  # noqa: BLE001 - a damaged journal is the reader's to report
            outcomes.append((journal.name, f"not folded ({type(exc).__name__}: {exc})"))
    return outcomes
