"""The only two places that touch rank files on disk: the directory scan and the safe open.

Everything else in the reader (and therefore in the package) goes through
:func:`scan_rank_files` and :func:`open_rank_file`.  The storage may change behind them (an
append-only journal folded into an in-memory HDF5 file for a rank still running) without any
other reading code changing: see the contract in :mod:`yprov4ml_hpc._reader`.
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

from .._constants import RANK_FILE_TEMPLATE
from .._errors import DamagedRunError

__all__ = ["RankFiles", "open_rank_file", "rank_of_file_name", "scan_rank_files"]

RANK_FILE_NAME = re.compile(r"^rank_(\d{6,})\.h5$")


def rank_of_file_name(name: str) -> int | None:
    """The rank a file name claims (``rank_000012.h5`` -> 12), None if it is no rank file."""
    match = RANK_FILE_NAME.match(name)
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class RankFiles:
    """What ``ranks/`` holds: one file per rank, and the names that claim a rank twice."""

    by_rank: dict[int, Path]
    # (file name, rank, name of the file that stands for the rank): never read.
    duplicates: tuple[tuple[str, int, str], ...]


def scan_rank_files(ranks_dir: Path) -> RankFiles:
    """Map the rank files of ``ranks_dir`` to their ranks (an absent folder holds none).

    The one rule for two names claiming one rank (``rank_000001.h5`` and ``rank_0000001.h5``):
    the name the collector writes (``RANK_FILE_TEMPLATE``) stands for the rank, else the
    first by name; the others are duplicates, reported and never read.
    """
    try:
        names = sorted(entry.name for entry in os.scandir(ranks_dir))
    except (FileNotFoundError, NotADirectoryError):
        return RankFiles({}, ())
    claims: dict[int, list[str]] = {}
    for name in names:
        rank = rank_of_file_name(name)
        if rank is not None:
            claims.setdefault(rank, []).append(name)
    by_rank: dict[int, Path] = {}
    duplicates: list[tuple[str, int, str]] = []
    for rank, claimants in sorted(claims.items()):
        canonical = RANK_FILE_TEMPLATE.format(rank=rank)
        chosen = canonical if canonical in claimants else claimants[0]
        by_rank[rank] = ranks_dir / chosen
        duplicates.extend((name, rank, chosen) for name in claimants if name != chosen)
    return RankFiles(by_rank, tuple(duplicates))


@contextlib.contextmanager
def open_rank_file(path: Path) -> Iterator[h5py.File]:
    """Open a rank file read-only, safely: the one way any code here opens one.

    Only a regular file (a symlink is not followed: a FIFO or device would block the open, a
    link would read outside the run), without HDF5 file locking (the writer may hold the file:
    a locked open fails on a live run).  Any failure to open is a DamagedRunError with the
    file's name and the reason; errors raised while the caller reads pass through unchanged.
    """
    try:
        if not stat.S_ISREG(path.lstat().st_mode):
            raise DamagedRunError(f"{path.name}: not a regular file")
        handle = h5py.File(path, "r", locking=False)
    except DamagedRunError:
        raise
    except Exception as exc:  # anything a crafted or vanished file provokes in h5py/os
        raise DamagedRunError(f"{path.name}: unreadable ({type(exc).__name__}: {exc})") from exc
    try:
        yield handle
    finally:
        handle.close()
