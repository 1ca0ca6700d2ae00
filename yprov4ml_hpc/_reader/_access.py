"""The only two places that touch rank files on disk: the directory scan and the safe open.

Everything else in the reader (and therefore in the package) goes through
:func:`scan_rank_files` and :func:`open_rank_file`; see the contract in
:mod:`yprov4ml_hpc._reader`.  Two kinds of rank file live in ``ranks/``:

- ``rank_NNNNNN.h5``, the HDF5 layout of DESIGN section 4: a rank that closed folded its
  journal into it (``_fold.fold_journal``: written aside, renamed into place, then the
  journal removed);
- ``rank_NNNNNN.journal``, the append-only journal (``_journal.py``) of a rank still running,
  or one that was killed: :func:`open_rank_file` folds its good frames into an in-memory HDF5
  file with the same function that writes the .h5, so every reader sees one layout.  A live
  journal is opened many times (a rank's meta, then each series, read after read): the
  process keeps its parse and its latest fold (:class:`_JournalCache`), so an open parses only
  the frames appended since and folds again only when there are some.

When both exist the .h5 wins (it was complete before the rename; the journal is about to go).
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from .._constants import JOURNAL_FILE_TEMPLATE, JOURNAL_SUFFIX, RANK_FILE_SUFFIX, RANK_FILE_TEMPLATE
from .._errors import DamagedRunError
from .._fold import fold_to_memory
from .._journal import FRAME_HEADER, JournalContents, JournalParser

__all__ = ["RankFiles", "open_rank_file", "opened_file", "rank_of_file_name", "scan_rank_files"]

RANK_FILE_NAME = re.compile(r"^rank_(\d{6,})(\.h5|\.journal)$")


def rank_of_file_name(name: str) -> int | None:
    """The rank a file name claims (``rank_000012.h5``, ``rank_000012.journal`` -> 12), None if
    it is no rank file."""
    match = RANK_FILE_NAME.match(name)
    return int(match.group(1)) if match else None


def _is_journal(path: Path) -> bool:
    return path.name.endswith(JOURNAL_SUFFIX)


def _folded_name(journal: Path) -> Path:
    """``rank_NNNNNN.journal`` -> ``rank_NNNNNN.h5``: the file its rank folds it into."""
    return journal.with_name(journal.name[: -len(JOURNAL_SUFFIX)] + RANK_FILE_SUFFIX)


@dataclass(frozen=True)
class RankFiles:
    """What ``ranks/`` holds: one file per rank, and the names that claim a rank twice."""

    by_rank: dict[int, Path]
    # (file name, rank, name of the file that stands for the rank): never read.
    duplicates: tuple[tuple[str, int, str], ...]


def scan_rank_files(ranks_dir: Path) -> RankFiles:
    """Map the rank files of ``ranks_dir`` to their ranks (an absent folder holds none).

    A journal whose .h5 exists beside it (same name, ``.h5``) is not read and not a duplicate:
    its rank has just folded it and removes it next.  The one rule for two names claiming one
    rank (``rank_000001.h5`` and ``rank_0000001.h5``): a name the collector writes
    (``RANK_FILE_TEMPLATE``, else ``JOURNAL_FILE_TEMPLATE``) stands for the rank, else the
    first by name; the others are duplicates, reported and never read.
    """
    try:
        names = sorted(entry.name for entry in os.scandir(ranks_dir))
    except (FileNotFoundError, NotADirectoryError):
        return RankFiles({}, ())
    present = set(names)
    claims: dict[int, list[str]] = {}
    for name in names:
        rank = rank_of_file_name(name)
        if rank is None:
            continue
        if name.endswith(JOURNAL_SUFFIX) and _folded_name(Path(name)).name in present:
            continue  # superseded by its .h5
        claims.setdefault(rank, []).append(name)
    by_rank: dict[int, Path] = {}
    duplicates: list[tuple[str, int, str]] = []
    for rank, claimants in sorted(claims.items()):
        preferred = (RANK_FILE_TEMPLATE.format(rank=rank), JOURNAL_FILE_TEMPLATE.format(rank=rank))
        chosen = next((name for name in preferred if name in claimants), claimants[0])
        by_rank[rank] = ranks_dir / chosen
        duplicates.extend((name, rank, chosen) for name in claimants if name != chosen)
    return RankFiles(by_rank, tuple(duplicates))


def _require_regular(path: Path) -> None:
    if not stat.S_ISREG(path.lstat().st_mode):
        raise DamagedRunError(f"{path.name}: not a regular file")


class _Snapshot:
    """One fold of a journal (an in-memory rank file), shared by the opens that use it.

    A newer fold replaces it in the cache; it is closed once retired and no open uses it, so
    a reader in the middle of it never sees it change or close under it.
    """

    __slots__ = ("handle", "retired", "users")

    def __init__(self, handle: h5py.File) -> None:
        self.handle = handle
        self.users = 0
        self.retired = False

    def release(self) -> None:  # under the cache's lock
        self.users -= 1
        if self.retired and self.users == 0:
            self.handle.close()

    def retire(self) -> None:  # under the cache's lock
        self.retired = True
        if self.users == 0:
            self.handle.close()


@dataclass
class _Entry:
    """What this process knows of one journal: its identity and size when last read, the
    parser (holding every good frame so far) and the fold of those frames."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    parser: JournalParser
    snapshot: _Snapshot

    @property
    def cost(self) -> int:
        return 2 * self.parser.good_bytes  # the parsed arrays + their fold, about a journal each


class _JournalCache:
    """Folded journals of this process, by path: live reads parse only appended frames.

    Correctness first: an entry is reused only for the same file (st_dev, st_ino) whose last
    parsed frame is still on disk byte for byte (its header holds the frame's crc32); then the
    bytes after it are the only news.  Anything else (a new file under the name, a shorter
    one, a changed frame) is parsed from the start.  A journal only grows, so every fold a
    reader gets is a prefix of the next: a count read from one fold is a prefix of a later one.

    Bounded: ``budget_bytes`` (each journal costs about twice its size) and ``max_entries``,
    least recently used out first; a journal larger than the budget is folded for one open and
    not kept.  One lock: opens from several threads are serialised (h5py serialises them anyway).
    """

    def __init__(self, budget_bytes: int = 256 << 20, max_entries: int = 16) -> None:
        self.budget_bytes = budget_bytes
        self.max_entries = max_entries
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.folds = 0  # folds made (tests and benchmarks read it)

    def forget_after_fork(self) -> None:
        """In a forked child: a lock another thread held at the fork would never be released."""
        self._lock = threading.Lock()
        self._entries = OrderedDict()

    def forget(self, path: Path) -> None:
        with self._lock:
            self._drop(os.path.abspath(path))

    def clear(self) -> None:
        with self._lock:
            for key in list(self._entries):
                self._drop(key)

    def release(self, snapshot: _Snapshot) -> None:
        """The end of one use of a snapshot :meth:`open` returned."""
        with self._lock:
            snapshot.release()

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            entry.snapshot.retire()

    def open(self, path: Path, latest: bool) -> _Snapshot:
        """A fold of the journal at ``path``, in use until :meth:`release`.

        ``latest``: the journal as it is now (what was appended since the last read is parsed
        and folded).  ``latest=False``: the fold this process made last of this same file may
        serve, if there is one (a caller that reads at most the count of points an earlier
        read found, and checks it got them).  FileNotFoundError if the journal is gone.
        """
        key = os.path.abspath(path)
        info = path.lstat()
        if not stat.S_ISREG(info.st_mode):
            raise DamagedRunError(f"{path.name}: not a regular file")
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and (entry.dev, entry.ino) != (info.st_dev, info.st_ino):
                self._drop(key)
                entry = None
            if entry is not None and (
                not latest or (entry.size, entry.mtime_ns) == (info.st_size, info.st_mtime_ns)
            ):
                self._entries.move_to_end(key)
            else:
                entry = self._read(path, key, entry)
            entry.snapshot.users += 1
            snapshot = entry.snapshot
            self._evict(keep=key)
            return snapshot

    def _read(self, path: Path, key: str, entry: _Entry | None) -> _Entry:
        # O_NOFOLLOW | O_NONBLOCK: a link or FIFO swapped in since the lstat is refused, never
        # followed or waited on.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as file:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise DamagedRunError(f"{path.name}: not a regular file")
            if entry is not None and not self._continues(entry, info, fd):
                self._drop(key)
                entry = None
            parser = entry.parser if entry is not None else JournalParser()
            file.seek(parser.good_bytes)
            data = file.read()
        try:
            taken = parser.feed(data)
            contents = parser.result()
        except BaseException:
            self._drop(key)  # its parser took part of the bad frames: start again next time
            raise
        if entry is not None and taken == 0:
            entry.size, entry.mtime_ns = info.st_size, info.st_mtime_ns
            self._entries.move_to_end(key)
            return entry
        snapshot = _Snapshot(fold_to_memory(path, contents))
        self.folds += 1
        _compact(contents)
        if entry is not None:
            entry.snapshot.retire()
        fresh = _Entry(info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, parser, snapshot)
        self._entries[key] = fresh
        self._entries.move_to_end(key)
        return fresh

    @staticmethod
    def _continues(entry: _Entry, info: os.stat_result, fd: int) -> bool:
        """Whether the file still holds what ``entry`` parsed: same file, not shorter, and the
        last parsed frame's header (with its crc32) unchanged."""
        parser = entry.parser
        if (entry.dev, entry.ino) != (info.st_dev, info.st_ino) or info.st_size < parser.good_bytes:
            return False
        return os.pread(fd, FRAME_HEADER.size, parser.last_frame_start) == parser.last_frame_header

    def _evict(self, keep: str) -> None:
        total = sum(e.cost for e in self._entries.values())
        for key in list(self._entries):
            if len(self._entries) <= self.max_entries and total <= self.budget_bytes:
                break
            if key == keep and len(self._entries) > 1:
                continue
            total -= self._entries[key].cost
            self._drop(key)


def _compact(contents: JournalContents) -> None:
    """One batch per series instead of one per frame: the next fold concatenates one array
    and the frames appended since, not thousands of small ones (a live journal's frames hold
    a few dozen points each)."""
    for batches in contents.series.values():
        if len(batches) > 1:
            merged = tuple(np.concatenate(column) for column in zip(*batches, strict=True))
            batches[:] = [(merged[0], merged[1], merged[2])]


_journals = _JournalCache()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_journals.forget_after_fork)


def _open(path: Path, latest: bool) -> tuple[h5py.File, _Snapshot | None]:
    if _is_journal(path):
        try:
            snapshot = _journals.open(path, latest)
            return snapshot.handle, snapshot
        except FileNotFoundError:
            # Gone since the scan: its rank folded it (the .h5 was renamed into place before
            # the journal was removed), so the .h5 holds all of it and more.
            _journals.forget(path)
            path = _folded_name(path)
    _require_regular(path)
    return h5py.File(path, "r", locking=False), None


@contextlib.contextmanager
def open_rank_file(path: Path, *, latest: bool = True) -> Iterator[h5py.File]:
    """Open a rank file read-only, safely: the one way any code here opens one.

    Only a regular file (a symlink is not followed: a FIFO or device would block the open, a
    link would read outside the run), without HDF5 file locking (the writer may hold the file:
    a locked open fails on a live run).  A journal yields an in-memory HDF5 file in the
    rank-file layout of its good frames (a growing or torn tail is left out), as it is now;
    with ``latest=False`` the fold this process last made of it may serve instead (an older
    prefix: only for a caller that reads at most what an earlier read found and checks it got
    it).  The handle must not be written to.  A journal that its rank folded since the scan is
    read from the new .h5.  Any failure to open is a DamagedRunError with the file's name and
    the reason; errors raised while the caller reads pass through unchanged.
    """
    try:
        handle, snapshot = _open(path, latest)
    except DamagedRunError:
        raise
    except Exception as exc:  # anything a crafted or vanished file provokes in h5py/os/the fold
        raise DamagedRunError(f"{path.name}: unreadable ({type(exc).__name__}: {exc})") from exc
    try:
        yield handle
    finally:
        if snapshot is None:
            handle.close()
        else:
            _journals.release(snapshot)


def opened_file(handle: h5py.File, path: Path) -> tuple[Path, int]:
    """The file a handle of :func:`open_rank_file` (asked for ``path``) reads, and its size on
    disk: ``path`` itself, or the .h5 that replaced a journal since.  A journal folded and
    removed after it was read counts the .h5's size; one vanished entirely counts 0."""
    source = path if handle.driver == "core" else Path(handle.filename)
    for candidate in (source, _folded_name(source)) if _is_journal(source) else (source,):
        try:
            return candidate, candidate.lstat().st_size
        except FileNotFoundError:
            continue
    return source, 0
