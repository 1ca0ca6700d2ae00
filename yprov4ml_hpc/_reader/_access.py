"""The only two places that touch rank files on disk: the directory scan and the safe open.

Everything else in the reader (and therefore in the package) goes through
:func:`scan_rank_files` and :func:`open_rank_file`; see the contract in
:mod:`yprov4ml_hpc._reader`.  Two kinds of rank file live in ``ranks/``:

- ``rank_NNNNNN.h5``, the HDF5 layout of DESIGN section 4: a rank that closed folded its
  journal into it (``_fold.fold_journal``: written aside, renamed into place, then the
  journal removed);
- ``rank_NNNNNN.journal``, the append-only journal (``_journal.py``) of a rank still running,
  or one that was killed: :func:`open_rank_file` folds its good frames into an in-memory HDF5
  file with the same function that writes the .h5, so every reader sees one layout.

When both exist the .h5 wins (it was complete before the rename; the journal is about to go).
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py

from .._constants import JOURNAL_FILE_TEMPLATE, JOURNAL_SUFFIX, RANK_FILE_SUFFIX, RANK_FILE_TEMPLATE
from .._errors import DamagedRunError
from .._fold import fold_to_memory

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


def _open(path: Path) -> h5py.File:
    if _is_journal(path):
        try:
            _require_regular(path)
            return fold_to_memory(path)
        except FileNotFoundError:
            # Gone since the scan: its rank folded it (the .h5 was renamed into place before
            # the journal was removed), so the .h5 holds all of it and more.
            path = _folded_name(path)
    _require_regular(path)
    return h5py.File(path, "r", locking=False)


@contextlib.contextmanager
def open_rank_file(path: Path) -> Iterator[h5py.File]:
    """Open a rank file read-only, safely: the one way any code here opens one.

    Only a regular file (a symlink is not followed: a FIFO or device would block the open, a
    link would read outside the run), without HDF5 file locking (the writer may hold the file:
    a locked open fails on a live run).  A journal is read once (good frames only: a growing
    or torn tail is left out) and yielded as an in-memory HDF5 file in the rank-file layout;
    one that its rank folded since the scan is read from the new .h5.  Any failure to open is
    a DamagedRunError with the file's name and the reason; errors raised while the caller
    reads pass through unchanged.
    """
    try:
        handle = _open(path)
    except DamagedRunError:
        raise
    except Exception as exc:  # anything a crafted or vanished file provokes in h5py/os/the fold
        raise DamagedRunError(f"{path.name}: unreadable ({type(exc).__name__}: {exc})") from exc
    try:
        yield handle
    finally:
        handle.close()


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
