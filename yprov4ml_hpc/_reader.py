"""load_run: the one reader of run directories, for merge, the CLI, users and tests.

It needs no MPI and reads a run whether or not it finished: files still being written are
opened without HDF5 file locking, and a damaged rank file is reported in ``problems`` (by
name, with the reason) instead of stopping the whole read.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

if TYPE_CHECKING:  # numpy.typing costs ~20 ms to import; annotations only need it here
    import numpy.typing as npt

from . import _constants as C
from ._errors import DamagedRunError, StorageError

__all__ = ["RankInfo", "RunData", "Series", "load_run", "open_rank_file", "rank_file_paths", "read_rank_meta"]

# A finished rank has rank_NNNNNN.h5; a running or crashed one its journal (see _journal.py).
_RANK_FILE = re.compile(r"^rank_(\d{6,})\.(h5|journal)$")
# A run directory may come from anyone: a claimed world size is bounded so that listing the
# missing ranks of a crafted file stays cheap (4 Mi ranks is far beyond any MPI job today).
MAX_WORLD_SIZE = 2**22
# Integer root attributes: (key, smallest valid value).  Checked when present.
_INT_ATTRS = {"rank": 0, "world_size": 1, "local_rank": 0, "pid": 0, "start_ns": 0, "end_ns": 0}
# The JSON-lines datasets and the str key every record of each must have.
_RECORD_KEYS = {C.PARAMS_DATASET: "name", C.ARTIFACTS_DATASET: "name", C.EVENTS_DATASET: "event"}


@dataclass(frozen=True)
class RankInfo:
    """One rank as its file describes it (status as written: running/finished/failed/killed)."""

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


def _attr(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):
        # h5py decodes invalid UTF-8 with surrogateescape; such a str cannot be encoded later
        # (merge writes JSON/HDF5), so replace the bad bytes now, as for bytes above.
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    return value


def _json_attr(attrs: dict[str, Any], key: str, default: Any) -> Any:
    raw = attrs.get(key)
    if not isinstance(raw, str):
        return default
    try:
        return json.loads(raw)
    except ValueError:
        return default


def _member(group: h5py.Group, name: str, kind: type[h5py.Group] | type[h5py.Dataset]) -> Any:
    """``group[name]`` if it is a hard-linked object of ``kind``, None if absent.

    Soft and external links are refused, not followed: an external link reads another file
    (data from outside the run directory, or a FIFO that blocks the open forever) and a soft
    link can dangle or loop.  A dataset must also keep its data in this file.
    """
    link = group.get(name, getlink=True)
    if link is None:
        return None
    if not isinstance(link, h5py.HardLink):
        raise DamagedRunError(f"{group.name}/{name} is a {type(link).__name__}, not a stored object")
    obj = group[name]
    if not isinstance(obj, kind):
        raise DamagedRunError(f"{obj.name} is not a {kind.__name__.lower()}")
    if isinstance(obj, h5py.Dataset) and (obj.external or obj.is_virtual):
        raise DamagedRunError(f"{obj.name} keeps its data outside the file")
    return obj


def _records(handle: h5py.File, name: str) -> list[dict[str, Any]]:
    ds = _member(handle, name, h5py.Dataset)
    if ds is None:
        return []
    if ds.ndim != 1 or h5py.check_string_dtype(ds.dtype) is None:
        raise DamagedRunError(f"{name} is not a list of JSON strings")
    key = _RECORD_KEYS[name]
    out = []
    for i, raw in enumerate(ds[...]):
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        if not text:
            continue
        record = json.loads(text)
        # Readers index records by this key (params() by name, merge by name/event).
        if not isinstance(record, dict) or not isinstance(record.get(key), str):
            raise DamagedRunError(f"{name} record {i} is not an object with a str {key!r}")
        out.append(record)
    return out


def _check_attrs(attrs: dict[str, Any], file_rank: int | None) -> None:
    """Refuse root attributes that readers would trust: wrong types, absurd sizes, a rank that
    is not the file's own (two files claiming one rank would hide one of them)."""
    for key, low in _INT_ATTRS.items():
        value = attrs.get(key)
        if value is not None and (type(value) is not int or value < low):
            raise DamagedRunError(f"attribute {key}={value!r} is not an integer >= {low}")
    world_size, rank = attrs.get("world_size"), attrs.get("rank", file_rank)
    if world_size is not None and world_size > MAX_WORLD_SIZE:
        raise DamagedRunError(f"attribute world_size={world_size} is larger than {MAX_WORLD_SIZE}")
    if rank is not None and rank >= (MAX_WORLD_SIZE if world_size is None else world_size):
        raise DamagedRunError(f"rank {rank} is out of range (world_size {world_size})")
    if file_rank is not None and rank != file_rank:
        raise DamagedRunError(f"attribute rank={rank} does not match the file name")


def _series_meta(group: h5py.Group) -> dict[str, Any]:
    name, context = _attr(group.attrs.get("name")), _attr(group.attrs.get("context"))
    if not isinstance(name, str) or not isinstance(context, str):
        raise DamagedRunError(f"{group.name}: series name/context is not a string")
    lengths = []
    for key in ("step", "value", "time_ns"):
        ds = _member(group, key, h5py.Dataset)
        if ds is None or ds.ndim != 1 or ds.dtype.kind not in "iuf":
            raise DamagedRunError(f"{group.name}/{key} is missing or not a 1-D numeric dataset")
        lengths.append(ds.shape[0])
    return {"name": name, "context": context, "h5path": group.name, "count": int(min(lengths))}


def rank_file_paths(names: list[str]) -> list[str]:
    """The rank files among ``names`` (a folder listing), a journal only where its .h5 is absent.

    The .h5 wins when both exist: it was complete before it was renamed into place, and the
    journal it came from is about to be removed.
    """
    present = set(names)
    kept = []
    for name in names:
        match = _RANK_FILE.match(name)
        if match is None:
            continue
        if match.group(2) == "journal" and name[: -len(C.JOURNAL_SUFFIX)] + C.RANK_FILE_SUFFIX in present:
            continue
        kept.append(name)
    return sorted(kept)


def open_rank_file(path: Path) -> h5py.File:
    """Open a rank file for reading: the .h5 itself, or a journal folded in memory.

    A journal is folded by the same function that writes the .h5 at close, so a running or
    crashed rank reads exactly as it will once finished.  If the journal vanished because its
    rank just folded it, the new .h5 is read instead.
    """
    if path.name.endswith(C.JOURNAL_SUFFIX):
        from ._fold import fold_to_memory, h5_path_for

        try:
            return fold_to_memory(path)
        except FileNotFoundError:
            path = h5_path_for(path)
    return h5py.File(path, "r", locking=False)


def read_rank_meta(path: Path) -> dict[str, Any]:
    """Everything about one rank file except metric values: attrs, records, series lengths.

    Raises DamagedRunError (naming the file and the reason) when it cannot be read.
    """
    try:
        return _read_rank_meta_once(path)
    except DamagedRunError as exc:
        # A journal that vanished between the folder scan and the read: its rank just folded
        # it into the .h5 (renamed into place before the journal was removed).
        if path.name.endswith(C.JOURNAL_SUFFIX) and isinstance(exc.__cause__, FileNotFoundError):
            from ._fold import h5_path_for

            if h5_path_for(path).exists():
                return _read_rank_meta_once(h5_path_for(path))
        raise


def _read_rank_meta_once(path: Path) -> dict[str, Any]:
    match = _RANK_FILE.match(path.name)
    file_rank = int(match.group(1)) if match else None
    try:
        # Only a regular file (not followed if a symlink): opening a FIFO or device blocks.
        if not stat.S_ISREG(path.lstat().st_mode):
            raise DamagedRunError("not a regular file")
        with open_rank_file(path) as handle:
            attrs = {key: _attr(value) for key, value in handle.attrs.items()}
            schema, version = attrs.get("schema"), attrs.get("schema_version")
            if schema != C.RANK_SCHEMA or type(version) is not int:
                raise DamagedRunError(f"not a yprov4ml_hpc rank file (schema {schema!r})")
            if version > C.RANK_SCHEMA_VERSION:
                raise DamagedRunError(
                    f"schema version {version} is newer than this reader "
                    f"({C.RANK_SCHEMA_VERSION}); upgrade yprov4ml-hpc"
                )
            _check_attrs(attrs, file_rank)
            series = []
            metrics = _member(handle, C.METRICS_GROUP, h5py.Group)
            for ctx_key in metrics if metrics is not None else []:
                ctx_group = _member(metrics, ctx_key, h5py.Group)
                for key in ctx_group:
                    series.append(_series_meta(_member(ctx_group, key, h5py.Group)))
            return {
                "attrs": attrs,
                **{name: _records(handle, name) for name in _RECORD_KEYS},
                "series": series,
                "file_bytes": path.stat().st_size,
            }
    except DamagedRunError as exc:
        raise DamagedRunError(f"{path.name}: {exc}") from exc
    except Exception as exc:  # anything a crafted or damaged file provokes in h5py/numpy/json
        raise DamagedRunError(f"{path.name}: unreadable ({type(exc).__name__}: {exc})") from exc


class RunData:
    """A run directory as read from its rank files.  Use :func:`load_run` to get one."""

    def __init__(self, run_dir: Path, metas: dict[int, dict[str, Any]], problems: list[tuple[str, str]]):
        self.run_dir = run_dir
        self.problems = problems  # [(file name, reason)] for unreadable rank files
        self._metas = metas
        first = metas[min(metas)]["attrs"] if metas else {}
        self.run_id: str = str(first.get("run_id", run_dir.name))
        self.experiment: str = str(first.get("experiment", ""))
        sizes = [int(m["attrs"].get("world_size", 1)) for m in metas.values()]
        self.world_size: int = max([*sizes, max(metas) + 1 if metas else 0])
        self.ranks: list[RankInfo] = [self._rank_info(r, m) for r, m in sorted(metas.items())]
        self._index = {
            (s["name"], s["context"], rank): (m["path"], s["h5path"], s["count"])
            for rank, m in metas.items()
            for s in m["series"]
        }

    @staticmethod
    def _rank_info(rank: int, meta: dict[str, Any]) -> RankInfo:
        a = meta["attrs"]
        return RankInfo(
            rank=rank,
            host=str(a.get("host", "")),
            local_rank=int(a.get("local_rank", 0)),
            pid=int(a.get("pid", 0)),
            status=str(a.get("status", C.STATUS_RUNNING)),
            start_ns=int(a.get("start_ns", 0)),
            end_ns=int(a.get("end_ns", 0)),
            path=meta["path"],
            attrs=a,
        )

    @property
    def missing_ranks(self) -> list[int]:
        """Ranks of the job with no readable file."""
        return sorted(set(range(self.world_size)) - set(self._metas))

    def meta(self, rank: int) -> dict[str, Any]:
        """Raw metadata of one rank (attrs, params, artifacts, events, series lengths)."""
        return self._metas[rank]

    def params(self, rank: int = 0) -> dict[str, Any]:
        """``{name: value}`` of one rank, typed as logged; the last value of a name wins."""
        if rank not in self._metas:
            return {}
        return {p["name"]: p["value"] for p in self._metas[rank]["params"]}

    def artifacts(self, rank: int | None = None) -> list[dict[str, Any]]:
        """Artifacts, models and datasets of one rank or (None) of all ranks."""
        ranks = sorted(self._metas) if rank is None else [rank]
        return [{**a, "rank": r} for r in ranks if r in self._metas for a in self._metas[r]["artifacts"]]

    def events(self, rank: int | None = None) -> list[dict[str, Any]]:
        ranks = sorted(self._metas) if rank is None else [rank]
        return [{**e, "rank": r} for r in ranks if r in self._metas for e in self._metas[r]["events"]]

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
            for name, reason in self.problems:  # say why rather than "no series"
                match = _RANK_FILE.match(name)
                if match and int(match.group(1)) == rank and rank not in self._metas:
                    raise DamagedRunError(f"rank {rank} has no readable file: {reason}") from None
            raise KeyError(
                f"no series {metric!r} in context {ctx!r} on rank {rank}; see series_keys()"
            ) from None
        try:  # the file was checked by read_rank_meta, but it may have changed since
            with open_rank_file(path) as handle:
                group = handle[h5path]
                return Series(
                    metric,
                    ctx,
                    rank,
                    np.asarray(group["step"][:count], dtype=np.int64),
                    np.asarray(group["value"][:count], dtype=np.float64),
                    np.asarray(group["time_ns"][:count], dtype=np.int64),
                )
        except Exception as exc:
            raise DamagedRunError(f"{path.name}: series {h5path} unreadable ({exc})") from exc

    def iter_series(self) -> Iterator[Series]:
        for metric, ctx, rank in self.series_keys():
            yield self.series(metric, ctx, rank)

    def __repr__(self) -> str:
        return (
            f"RunData({str(self.run_dir)!r}, experiment={self.experiment!r}, "
            f"run_id={self.run_id!r}, world_size={self.world_size}, ranks={len(self.ranks)})"
        )


def load_run(run_dir: str | os.PathLike[str], strict: bool = False) -> RunData:
    """Read a run directory (finished or not).  ``strict=True`` raises on any damaged file."""
    root = Path(run_dir)
    ranks_dir = root / C.RANKS_DIRNAME
    if not ranks_dir.is_dir():
        raise StorageError(
            f"{root} is not a yprov4ml_hpc run directory (no {C.RANKS_DIRNAME}/ folder); "
            "pass the folder that start_run created, e.g. prov/<experiment>_<run_id>"
        )
    metas: dict[int, dict[str, Any]] = {}
    problems: list[tuple[str, str]] = []
    for name in rank_file_paths([entry.name for entry in ranks_dir.iterdir()]):
        path = ranks_dir / name
        match = _RANK_FILE.match(name)
        assert match is not None  # rank_file_paths keeps only names that match
        try:
            meta = read_rank_meta(path)
        except DamagedRunError as exc:
            if strict:
                raise
            problems.append((path.name, str(exc)))
            continue
        meta["path"] = path
        rank = int(match.group(1))  # read_rank_meta checked that the rank attribute agrees
        if rank in metas:  # rank_000001.h5 and rank_0000001.h5
            other = metas[rank]["path"].name
            duplicate = DamagedRunError(f"{path.name}: rank {rank} also claimed by {other}")
            if strict:
                raise duplicate
            problems.append((path.name, str(duplicate)))
            continue
        metas[rank] = meta
    if not metas and not problems:
        raise StorageError(f"{ranks_dir} holds no rank files; was the run started?")
    return RunData(root, metas, problems)
