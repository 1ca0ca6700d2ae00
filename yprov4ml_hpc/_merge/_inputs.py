"""What a merge knows about each rank, and gathering it for one run directory.

A rank's *merge meta* is :func:`yprov4ml_hpc._reader.read_rank_meta` (attributes, params,
artifacts, events, series lengths) plus a few statistics per series.  It is computed by one
function from one closed file: online, each rank computes its own right after closing it and
sends it to rank 0 (so the reading is spread over the ranks and the message stays small: no
metric values); offline, the merge computes it for every file.  Hence online == offline.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import _constants as C
from .._errors import DamagedRunError, MergeError, StorageError
from .._reader import MAX_WORLD_SIZE, open_rank_file, rank_file_paths, read_rank_meta
from ._stats import series_stats

__all__ = ["Progress", "RunInput", "collect_run", "read_merge_meta"]

Progress = Callable[[int, int, str], None]  # (done, total, what)

_RANK_FILE = re.compile(r"^rank_(\d{6,})\.(h5|journal)$")
_PARALLEL_MIN_FILES = 64  # below this, starting workers costs more than it saves


def read_merge_meta(path: Path) -> dict[str, Any]:
    """The merge meta of one rank file; DamagedRunError (file name and reason) if unreadable."""
    meta = read_rank_meta(path)
    meta["path"] = path
    try:
        with open_rank_file(path) as handle:
            for series in meta["series"]:
                group = handle[series["h5path"]]
                count = series["count"]
                series["stats"] = series_stats(
                    np.asarray(group["step"][:count], dtype=np.int64),
                    np.asarray(group["value"][:count], dtype=np.float64),
                    np.asarray(group["time_ns"][:count], dtype=np.int64),
                )
    except Exception as exc:  # read_rank_meta checked the layout, but the file may have changed
        raise DamagedRunError(f"{path.name}: series unreadable ({type(exc).__name__}: {exc})") from exc
    return meta


def _read_or_reason(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    try:
        return read_merge_meta(path), None
    except DamagedRunError as exc:
        return None, str(exc)


def _read_many(paths: list[Path], workers: int) -> Iterator[tuple[dict[str, Any] | None, str | None]]:
    """Merge metas in order.  Reading is per-file latency (HDF5 attributes cost ~30-100 us each,
    a parallel file system adds a round trip per open), so an offline merge of many files reads
    them in ``workers`` forked processes.  Never inside an MPI process (forking one is unsafe
    with most MPI libraries): finalize reads its few missing files serially."""
    if (
        workers <= 1
        or len(paths) < _PARALLEL_MIN_FILES
        or "mpi4py.MPI" in sys.modules
        or sys.platform != "linux"
    ):
        yield from map(_read_or_reason, paths)
        return
    # fork: no HDF5 file is open in this process at this point, and workers start in ~ms.
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        yield from pool.map(_read_or_reason, paths, chunksize=max(1, min(64, len(paths) // (4 * workers))))


@dataclass
class RunInput:
    """One run directory as the merge sees it."""

    run_dir: Path
    run_id: str
    experiment: str
    world_size: int
    metas: dict[int, dict[str, Any]]  # rank -> merge meta, sorted by rank
    problems: list[tuple[str, str]] = field(default_factory=list)  # (file name, reason)
    damaged: dict[int, str] = field(default_factory=dict)  # rank -> reason

    @property
    def missing(self) -> list[int]:
        """Ranks of the job with no readable file (never written, or damaged)."""
        return [r for r in range(self.world_size) if r not in self.metas]

    @property
    def prov_detail(self) -> str:
        """What the ranks asked for at start_run (lowest readable rank's setting)."""
        for meta in self.metas.values():
            detail = meta["attrs"].get("prov_detail")
            if detail in C.PROV_DETAIL_CHOICES:
                return str(detail)
        return C.DEFAULT_PROV_DETAIL


def _rank_files(ranks_dir: Path) -> dict[int, Path]:
    files: dict[int, Path] = {}
    try:
        entries = list(os.scandir(ranks_dir))
    except FileNotFoundError:
        return files
    for name in rank_file_paths([entry.name for entry in entries]):
        match = _RANK_FILE.match(name)
        if match:
            files.setdefault(int(match.group(1)), ranks_dir / name)
    return files


def collect_run(
    run_dir: Path,
    metas: Mapping[int, dict[str, Any] | None] | None = None,
    *,
    strict: bool = False,
    progress: Progress | None = None,
    workers: int = 1,
) -> RunInput:
    """Gather the merge metas of one run: use ``metas`` where given, read the other rank files.

    ``metas`` (rank -> meta or None) is what finalize received from the ranks; a benchmark may
    pass synthetic metas for every rank and no files at all.  Damaged files are reported in
    ``problems`` (or raise with ``strict=True``) and merged around.  ``workers > 1`` reads the
    files in that many processes (offline merges only; see :func:`_read_many`).
    """
    ranks_dir = run_dir / C.RANKS_DIRNAME
    given = {rank: meta for rank, meta in (metas or {}).items() if meta is not None}
    if not given and not ranks_dir.is_dir():
        raise StorageError(
            f"{run_dir} is not a yprov4ml_hpc run directory (no {C.RANKS_DIRNAME}/ folder); "
            "pass the folder that start_run created, e.g. prov/<experiment>_<run_id>"
        )
    files = _rank_files(ranks_dir)
    to_read = sorted(rank for rank in files if rank not in given)
    collected: dict[int, dict[str, Any]] = dict(given)
    problems: list[tuple[str, str]] = []
    damaged: dict[int, str] = {}
    paths = [files[rank] for rank in to_read]
    for done, (file_rank, (meta, why)) in enumerate(zip(to_read, _read_many(paths, workers), strict=True), 1):
        path = files[file_rank]
        if meta is None:
            if strict:
                raise DamagedRunError(f"{run_dir}: {why} (merge without --strict to merge around it)")
            problems.append((path.name, str(why)))
            damaged[file_rank] = str(why)
        else:  # read_rank_meta checked that the file's rank attribute is its name's number
            collected[file_rank] = meta
        if progress is not None:
            progress(done, len(to_read), "rank files read")
    if not collected:
        reasons = "; ".join(reason for _, reason in problems) or "no rank files"
        raise MergeError(f"{run_dir}: no readable rank file to merge ({reasons})")
    metas_sorted = {rank: collected[rank] for rank in sorted(collected)}
    first = metas_sorted[min(metas_sorted)]["attrs"]
    sizes = [int(m["attrs"].get("world_size", 1)) for m in metas_sorted.values()]
    # A damaged file's name is all we know of it: bound it like a claimed world size.
    world_size = max([*sizes, max(metas_sorted) + 1, *(r + 1 for r in damaged if r < MAX_WORLD_SIZE)])
    damaged = {rank: why for rank, why in damaged.items() if rank not in metas_sorted}
    return RunInput(
        run_dir=run_dir,
        run_id=str(first.get("run_id", run_dir.name)),
        experiment=str(first.get("experiment", "")),
        world_size=world_size,
        metas=metas_sorted,
        problems=sorted(problems),
        damaged=dict(sorted(damaged.items())),
    )
