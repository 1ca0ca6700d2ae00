"""Live journals are parsed once and then only what was appended: never a mixed or stale read.

The reader keeps, per journal, its parser and its latest fold (``_reader/_access.py``).  What
must hold: every open sees the journal as it is now (frames appended since are there, a torn
tail is not), an unchanged journal is not folded again, a journal that is no longer the one
parsed (rewritten, replaced, shortened) is parsed from the start, a fold in use never changes
or closes under its reader, and the cache stays within its budget.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from yprov4ml_hpc import _journal as J
from yprov4ml_hpc._reader import _access
from yprov4ml_hpc._reader._access import _JournalCache, open_rank_file
from yprov4ml_hpc._reader._rank import read_rank_meta, read_series_arrays

H5PATH = "/metrics/training/loss"


def _header() -> bytes:
    return J.encode_header({
        "schema": "yprov4ml_hpc/rank", "schema_version": 1, "run_id": "lv", "experiment": "e",
        "rank": 0, "world_size": 1, "status": "running", "host": "h", "pid": 1, "start_ns": 1,
    })


def _points(first: int, n: int, series_id: int = 0, scale: float = 0.5) -> bytes:
    steps = np.arange(first, first + n, dtype=np.int64)
    return J.encode_points(series_id, steps, steps * scale, steps + 100)


def _journal(tmp_path: Path) -> Path:
    path = tmp_path / "ranks" / "rank_000000.journal"
    path.parent.mkdir()
    path.write_bytes(_header() + J.encode_series(0, "loss", "training") + _points(0, 10))
    return path


def _append(path: Path, data: bytes) -> None:
    with open(path, "ab") as handle:
        handle.write(data)


def _steps(path: Path, **kwargs: bool) -> list[int]:
    with open_rank_file(path, **kwargs) as handle:
        return [int(s) for s in handle[H5PATH]["step"][...]]


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    _access._journals.clear()


def test_each_open_sees_what_was_appended_and_an_unchanged_journal_is_not_refolded(tmp_path: Path) -> None:
    path = _journal(tmp_path)
    assert _steps(path) == list(range(10))
    folds = _access._journals.folds
    assert _steps(path) == list(range(10))
    assert _access._journals.folds == folds  # unchanged: the same fold served
    parser = _access._journals._entries[os.path.abspath(path)].parser
    for first in range(10, 60, 10):
        _append(path, _points(first, 10))
        assert _steps(path) == list(range(first + 10))
    # Appends were parsed into the same parser (only the new bytes), folded once each.
    assert _access._journals._entries[os.path.abspath(path)].parser is parser
    assert _access._journals.folds == folds + 5
    _append(path, J.encode_record("params", json.dumps({"name": "lr", "value": 0.1})))
    _append(path, J.encode_attrs({"status": "killed"}))
    meta = read_rank_meta(path)
    assert [p["name"] for p in meta.params] == ["lr"] and meta.attrs.status == "killed"


def test_a_torn_tail_is_left_out_until_its_frame_is_complete(tmp_path: Path) -> None:
    path = _journal(tmp_path)
    assert _steps(path) == list(range(10))
    folds = _access._journals.folds
    frame = _points(10, 5)
    _append(path, frame[:20])
    assert _steps(path) == list(range(10))
    assert _access._journals.folds == folds  # no complete frame: nothing to fold
    _append(path, frame[20:])
    assert _steps(path) == list(range(15))


def test_a_journal_rewritten_under_the_reader_is_parsed_from_the_start(tmp_path: Path) -> None:
    path = _journal(tmp_path)
    assert _steps(path) == list(range(10))
    # Same file, last parsed frame replaced by another (longer) one: the bytes after the old
    # frame's end are not news to append; the file must be read again.
    prefix = _header() + J.encode_series(0, "loss", "training")
    with open(path, "r+b") as handle:
        handle.truncate(len(prefix))
        handle.seek(len(prefix))
        handle.write(_points(100, 30))
    assert _steps(path) == list(range(100, 130))
    # Shorter than what was parsed: read again from the start.
    path.write_bytes(prefix + _points(7, 1))
    assert _steps(path) == [7]
    # Another file under the name (a new inode), longer: read from the start too.
    replacement = path.with_name("new.journal")
    replacement.write_bytes(prefix + _points(0, 3) + _points(3, 3) + _points(6, 30))
    os.replace(replacement, path)
    assert _steps(path) == list(range(36))


def test_a_fold_in_use_does_not_change_or_close_under_its_reader(tmp_path: Path) -> None:
    path = _journal(tmp_path)
    with open_rank_file(path) as outer:
        _append(path, _points(10, 10))
        with open_rank_file(path) as inner:
            assert inner[H5PATH]["step"].shape == (20,)
        assert outer.id.valid and outer[H5PATH]["step"].shape == (10,)
    assert not outer.id.valid  # retired and released: closed
    assert _steps(path) == list(range(20))


def test_series_reads_use_the_fold_they_can_and_the_journal_now_when_it_falls_short(tmp_path: Path) -> None:
    path = _journal(tmp_path)
    assert _steps(path) == list(range(10))
    _append(path, _points(10, 10))
    folds = _access._journals.folds
    step, _, _ = read_series_arrays(path, H5PATH, 10)  # the fold this process has holds 10
    assert list(step) == list(range(10)) and _access._journals.folds == folds
    # A count found by another process's later read (a merge worker): more than this fold has.
    step, value, _ = read_series_arrays(path, H5PATH, 20)
    assert list(step) == list(range(20)) and list(value) == [s * 0.5 for s in range(20)]
    # A series newer than the fold this process has.
    _append(path, J.encode_series(1, "acc", "validation") + _points(0, 4, series_id=1, scale=-1.0))
    step, value, _ = read_series_arrays(path, "/metrics/validation/acc", 4)
    assert list(value) == [0.0, -1.0, -2.0, -3.0]


def test_the_cache_stays_within_its_budget_and_closes_what_it_drops(tmp_path: Path) -> None:
    paths = []
    for i in range(3):
        folder = tmp_path / f"r{i}"
        folder.mkdir()
        paths.append(_journal(folder))
    cache = _JournalCache(budget_bytes=1 << 30, max_entries=2)
    snapshots = []
    for path in paths:
        snapshot = cache.open(path, latest=True)
        cache.release(snapshot)
        snapshots.append(snapshot)
    assert len(cache._entries) == 2 and not snapshots[0].handle.id.valid  # oldest dropped, closed
    tiny = _JournalCache(budget_bytes=1)
    snapshot = tiny.open(paths[0], latest=True)
    assert snapshot.handle.id.valid  # usable while in use, although too big to keep
    tiny.release(snapshot)
    assert not tiny._entries and not snapshot.handle.id.valid


def test_readers_on_threads_while_the_journal_grows_see_exact_prefixes(tmp_path: Path) -> None:
    path = _journal(tmp_path)
    problems: list[str] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            try:
                steps = _steps(path)
                if steps != list(range(len(steps))):
                    problems.append(f"not a prefix: {len(steps)}")
            except Exception as exc:  # any failure is the finding
                problems.append(repr(exc))

    readers = [threading.Thread(target=read) for _ in range(3)]
    for thread in readers:
        thread.start()
    for first in range(10, 2010, 20):
        _append(path, _points(first, 20))
    done.set()
    for thread in readers:
        thread.join()
    assert problems == []
    assert _steps(path) == list(range(2010))
