"""The one reader of run directories: merge, finalize, the CLI, the report, users and tests.

It needs no MPI and reads a run whether it finished, crashed or is still running; a damaged
rank file is reported in ``problems`` (by name, with the reason) instead of stopping the read.
:func:`load_run` is its public face; it returns frozen records (:class:`RankMeta`,
:class:`RankAttrs`, :class:`SeriesMeta`, :class:`SeriesStats`) that finalize pickles, merge
consumes and the CLI/report/plots display.

One rule each, here and nowhere else:

- *duplicates*: two names claiming one rank (``rank_000001.h5``, ``rank_0000001.h5``): the
  collector's own name stands for the rank, the other is a problem and is never read;
- *damaged*: a file that cannot be read is a problem (``problems``, ``damaged``), its rank has
  no data; ``strict=True`` raises instead;
- *world size*: the largest of the ranks' ``world_size`` attributes, the highest readable rank
  + 1 and the highest damaged file's rank + 1 (a file's name is evidence that its rank existed);
- *missing*: every rank below the world size without a readable file (damaged ones included).

Storage contract (for whoever changes the on-disk layout)
---------------------------------------------------------
All file access goes through exactly two functions in :mod:`._access`:

(a) :func:`scan_rank_files` maps the names in ``ranks/`` to ranks: ``rank_NNNNNN.h5`` (a
    closed rank) and ``rank_NNNNNN.journal`` (a running or killed rank's append-only
    journal, see ``_journal.py``); the .h5 wins when both exist;
(b) :func:`open_rank_file` is the single safe open (regular file only, ``locking=False``,
    failures wrapped as DamagedRunError) and yields an ``h5py.File``: the .h5 itself, or the
    journal folded into an in-memory HDF5 file (core driver) by the same function that
    writes the .h5 at close (``_fold.write_layout``).

Everything above them reads the HDF5 layout of DESIGN section 4 from that handle, so
finished, running and crashed ranks are read by one code path; nothing else in the package
opens a rank file.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import _constants as C
from .._errors import DamagedRunError, SeriesNotFoundError, StorageError
from ._access import RankFiles, open_rank_file, rank_of_file_name, scan_rank_files
from ._rank import MAX_WORLD_SIZE, read_rank_attrs, read_rank_meta, read_series_arrays
from ._records import RankAttrs, RankMeta, SeriesMeta, SeriesStats, decode_json

if TYPE_CHECKING:  # numpy.typing costs ~20 ms to import; annotations only need it here
    import numpy.typing as npt

__all__ = [
    "MAX_WORLD_SIZE",
    "Progress",
    "RankAttrs",
    "RankFiles",
    "RankInfo",
    "RankMeta",
    "RunData",
    "RunHeader",
    "Series",
    "SeriesMeta",
    "SeriesStats",
    "decode_json",
    "world_size_of",
    "load_run",
    "open_rank_file",
    "rank_of_file_name",
    "read_rank_attrs",
    "read_rank_meta",
    "read_metas_share",
    "read_run_header",
    "scan_rank_files",
]

Progress = Callable[[int, int, str], None]  # (done, total, what)
_PARALLEL_MIN_FILES = 64  # below this, starting workers costs more than it saves


@dataclass(frozen=True)
class RankInfo:
    """One rank as its file describes it (status as written: running/finished/failed/killed).

    ``attrs`` are the root attributes as stored (JSON-valued ones still text); the typed,
    decoded ones are ``run.meta(rank).attrs``.
    """

    rank: int
    host: str
    local_rank: int
    pid: int
    status: str
    start_ns: int
    end_ns: int
    path: Path | None = None
    attrs: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Series:
    """One metric series of one rank, exactly as logged."""

    name: str
    context: str
    rank: int
    step: npt.NDArray[np.int64]
    value: npt.NDArray[np.float64]
    time_ns: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.value.shape[0])


class RunData:
    """A run directory as read from its rank files.  Use :func:`load_run` to get one."""

    def __init__(
        self,
        run_dir: Path,
        metas: Mapping[int, RankMeta],
        problems: list[tuple[str, str]],
        damaged: Mapping[int, str] | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.metas: dict[int, RankMeta] = {rank: metas[rank] for rank in sorted(metas)}
        self.problems = sorted(problems)  # [(file name, reason)] for unreadable or duplicate files
        self.damaged = {r: why for r, why in sorted((damaged or {}).items()) if r not in self.metas}
        first = self.metas[min(self.metas)].attrs if self.metas else None
        self.run_id: str = (first.run_id if first else None) or run_dir.name
        self.experiment: str = (first.experiment if first else None) or ""
        # Ranks of one job that named the experiment differently: the odd ones out are those
        # that differ from the name most ranks agree on (a crafted rank 0 must not blame the rest).
        names = Counter(m.attrs.experiment or "" for m in self.metas.values())
        usual = names.most_common(1)[0][0] if names else ""
        for m in self.metas.values():
            other = m.attrs.experiment or ""
            if other != usual:
                name = m.path.name if m.path else C.RANK_FILE_TEMPLATE.format(rank=m.rank)
                why = f"experiment name {other!r} differs from the other ranks' {usual!r}"
                self.problems.append((name, why))
        self.problems.sort()
        self.world_size: int = world_size_of({r: m.attrs for r, m in self.metas.items()}, self.damaged)

    @functools.cached_property
    def ranks(self) -> list[RankInfo]:
        """One :class:`RankInfo` per readable rank, in rank order.  Built on first use: the
        CLI, report and plots ask; a merge or finalize never does (10^5 objects to throw away)."""
        return [_rank_info(m) for m in self.metas.values()]

    @functools.cached_property
    def _index(self) -> dict[tuple[str, str, int], tuple[Path | None, str, int]]:
        """(metric, context, rank) -> where the series lives.  Built on first use: a merge or
        finalize never asks, and at 10^5 ranks it is a tuple per series of every rank."""
        return {
            (s.name, s.context, rank): (m.path, s.h5path, s.count)
            for rank, m in self.metas.items()
            for s in m.series
        }

    @property
    def missing_ranks(self) -> list[int]:
        """Ranks of the job with no readable file (never written, or damaged)."""
        return [r for r in range(self.world_size) if r not in self.metas]

    missing = missing_ranks

    @property
    def prov_detail(self) -> str:
        """What the ranks asked for at start_run (lowest readable rank's setting)."""
        for meta in self.metas.values():
            if meta.attrs.prov_detail is not None:
                return meta.attrs.prov_detail
        return C.DEFAULT_PROV_DETAIL

    def meta(self, rank: int) -> RankMeta:
        """Everything about one rank except metric values (KeyError if it has no readable file)."""
        return self.metas[rank]

    def params(self, rank: int = 0) -> dict[str, Any]:
        """``{name: value}`` of one rank, typed as logged; the last value of a name wins."""
        if rank not in self.metas:
            return {}
        return {p["name"]: p.get("value") for p in self.metas[rank].params}

    def artifacts(self, rank: int | None = None) -> list[dict[str, Any]]:
        """Artifacts, models and datasets of one rank or (None) of all ranks."""
        ranks = sorted(self.metas) if rank is None else [rank]
        return [{**a, "rank": r} for r in ranks if r in self.metas for a in self.metas[r].artifacts]

    def events(self, rank: int | None = None) -> list[dict[str, Any]]:
        ranks = sorted(self.metas) if rank is None else [rank]
        return [{**e, "rank": r} for r in ranks if r in self.metas for e in self.metas[r].events]

    def series_keys(self) -> list[tuple[str, str, int]]:
        """``[(metric, context, rank), ...]`` with the original (unescaped) names."""
        return sorted(self._index)

    def series(self, metric: str, context: str | None = None, rank: int = 0) -> Series:
        """The arrays of one series; ``context=None`` means the default context.

        KeyError if the rank has no such series; DamagedRunError if the rank's file is damaged.
        """
        ctx = C.DEFAULT_CONTEXT if context is None else str(getattr(context, "value", context))
        try:
            path, h5path, count = self._index[(metric, ctx, rank)]
        except KeyError:
            if rank in self.damaged:  # say why rather than "no series"
                raise DamagedRunError(f"rank {rank} has no readable file: {self.damaged[rank]}") from None
            raise SeriesNotFoundError(
                f"no series {metric!r} in context {ctx!r} on rank {rank}; see series_keys()"
            ) from None
        if path is None:
            raise DamagedRunError(f"rank {rank}: its metadata came without a file to read series from")
        step, value, time_ns = read_series_arrays(path, h5path, count)
        return Series(metric, ctx, rank, step, value, time_ns)

    def iter_series(self) -> Iterator[Series]:
        for metric, ctx, rank in self.series_keys():
            yield self.series(metric, ctx, rank)

    def __repr__(self) -> str:
        return (
            f"RunData({str(self.run_dir)!r}, experiment={self.experiment!r}, "
            f"run_id={self.run_id!r}, world_size={self.world_size}, ranks={len(self.ranks)})"
        )


def _duplicate(name: str, rank: int, chosen: str) -> str:
    return f"{name}: rank {rank} also claimed by {chosen} (a copy? only {chosen} is read)"


def world_size_of(readable: Mapping[int, RankAttrs], damaged: Mapping[int, str]) -> int:
    """The one world-size rule: the largest claimed ``world_size``, highest readable rank + 1,
    highest damaged file's rank + 1 (its name is all we know of it: bounded like a claim)."""
    return max(
        [
            *(a.world_size for a in readable.values()),
            max(readable) + 1 if readable else 0,
            *(r + 1 for r in damaged if r < MAX_WORLD_SIZE),
        ]
    )


@dataclass(frozen=True)
class RunHeader:
    """A run directory from its rank files' root attributes only (one small read per file):
    what ``ls`` needs.  Same scan and same rules as :func:`load_run`."""

    run_dir: Path
    ranks: dict[int, RankAttrs]
    paths: dict[int, Path]
    problems: list[tuple[str, str]]
    damaged: dict[int, str]

    @property
    def world_size(self) -> int:
        return world_size_of(self.ranks, self.damaged)

    @property
    def missing_ranks(self) -> list[int]:
        """Ranks with no readable file (never written, or damaged), as in :class:`RunData`."""
        return [r for r in range(self.world_size) if r not in self.ranks]


def read_run_header(run_dir: str | os.PathLike[str], *, first_only: bool = False) -> RunHeader:
    """The root attributes of every rank file (``first_only``: of the lowest rank's only);
    never raises for a damaged file (it is in ``problems``); no ``ranks/`` folder: no ranks."""
    root = Path(run_dir)
    files = scan_rank_files(root / C.RANKS_DIRNAME)
    problems = [
        (name, _duplicate(name, rank, chosen)) for name, rank, chosen in files.duplicates
    ]
    found: dict[int, RankAttrs] = {}
    damaged: dict[int, str] = {}
    wanted = list(files.by_rank)[:1] if first_only else list(files.by_rank)
    for rank in wanted:
        path = files.by_rank[rank]
        try:
            found[rank] = read_rank_attrs(path)
        except DamagedRunError as exc:
            problems.append((path.name, str(exc)))
            damaged[rank] = str(exc)
    return RunHeader(root, found, dict(files.by_rank), sorted(problems), damaged)


def _rank_info(meta: RankMeta) -> RankInfo:
    a = meta.attrs
    return RankInfo(
        rank=meta.rank,
        host=a.host,
        local_rank=a.local_rank,
        pid=a.pid,
        status=a.status,
        start_ns=a.start_ns,
        end_ns=a.end_ns,
        path=meta.path,
        attrs=a.raw,
    )


def _read_or_reason(job: tuple[Path, bool]) -> tuple[RankMeta | None, str | None]:
    try:
        return read_rank_meta(job[0], stats=job[1]), None
    except DamagedRunError as exc:
        return None, str(exc)


def _read_many(paths: list[Path], stats: bool, workers: int) -> Iterator[tuple[RankMeta | None, str | None]]:
    """Metas in order.  Reading is per-file latency (HDF5 attributes cost ~30-100 us each, a
    parallel file system adds a round trip per open), so a read of many files may use
    ``workers`` forked processes.  Never inside an MPI process (forking one is unsafe with most
    MPI libraries): finalize reads its few missing files serially."""
    jobs = [(path, stats) for path in paths]
    if (
        workers <= 1
        or len(paths) < _PARALLEL_MIN_FILES
        or "mpi4py.MPI" in sys.modules
        or sys.platform != "linux"
    ):
        yield from map(_read_or_reason, jobs)
        return
    # fork: no HDF5 file on disk is open in this process at this point (the journal cache holds
    # only in-memory files, and a child forgets it: _access), and workers start in ~ms.
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        yield from pool.map(_read_or_reason, jobs, chunksize=max(1, min(64, len(paths) // (4 * workers))))


def read_metas_share(run_dir: str | os.PathLike[str], index: int, count: int) -> dict[int, RankMeta | None]:
    """The metas (with series statistics) of every ``count``-th rank file from ``index`` on:
    one process's share of a merge that ``count`` processes read together (``mpiexec ...
    yprov4ml-hpc merge``).  A file that cannot be read maps to None; the process that builds
    reads it again and reports it by the reader's rules, as a serial merge would."""
    ranks_dir = Path(run_dir) / C.RANKS_DIRNAME
    if not ranks_dir.is_dir():
        return {}  # the building process raises load_run's error for it
    files = scan_rank_files(ranks_dir)
    mine = sorted(files.by_rank)[index::count]
    return {rank: _read_or_reason((files.by_rank[rank], True))[0] for rank in mine}


def load_run(
    run_dir: str | os.PathLike[str],
    strict: bool = False,
    *,
    metas: Mapping[int, RankMeta | None] | None = None,
    stats: bool = False,
    progress: Progress | None = None,
    workers: int = 1,
) -> RunData:
    """Read a run directory (finished or not).  ``strict=True`` raises on any damaged or
    duplicate rank file.

    ``metas`` (rank -> meta or None) are metas already read (finalize receives them from the
    ranks; a benchmark may pass synthetic ones and no files); the other rank files are read.
    ``stats=True`` adds each series' statistics (what merge and summary need).  ``workers > 1``
    reads many files in that many processes (offline only, see :func:`_read_many`).
    """
    root = Path(run_dir)
    ranks_dir = root / C.RANKS_DIRNAME
    given = {rank: meta for rank, meta in (metas or {}).items() if meta is not None}
    if not given and not ranks_dir.is_dir():
        raise StorageError(
            f"{root} is not a yprov4ml_hpc run directory (no {C.RANKS_DIRNAME}/ folder); "
            "pass the folder that start_run created, e.g. prov/<experiment>_<run_id>"
        )
    files = scan_rank_files(ranks_dir)
    problems: list[tuple[str, str]] = []
    for name, rank, chosen in files.duplicates:
        duplicate = DamagedRunError(_duplicate(name, rank, chosen))
        if strict:
            raise duplicate
        problems.append((name, str(duplicate)))
    to_read = [rank for rank in files.by_rank if rank not in given]
    collected: dict[int, RankMeta] = dict(given)
    damaged: dict[int, str] = {}
    paths = [files.by_rank[rank] for rank in to_read]
    for done, (rank, (meta, why)) in enumerate(
        zip(to_read, _read_many(paths, stats, workers), strict=True), 1
    ):
        if meta is None:
            if strict:
                raise DamagedRunError(str(why))
            problems.append((files.by_rank[rank].name, str(why)))
            damaged[rank] = str(why)
        else:  # read_rank_meta checked that the file's rank attribute is its name's number
            collected[rank] = meta
        if progress is not None:
            progress(done, len(to_read), "rank files read")
    if not collected and not problems:
        raise StorageError(f"{ranks_dir} holds no rank files; was the run started?")
    return RunData(root, collected, problems, damaged)
