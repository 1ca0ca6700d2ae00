"""load_run: the one reader of run directories, for merge, the CLI, users and tests.

It needs no MPI and reads a run whether or not it finished: files still being written are
opened without HDF5 file locking, and a damaged rank file is reported in ``problems`` (by
name, with the reason) instead of stopping the whole read.
"""

from __future__ import annotations

import json
import os
import re
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

__all__ = ["RankInfo", "RunData", "Series", "load_run", "read_rank_meta"]

_RANK_FILE = re.compile(r"^rank_(\d{6,})\.h5$")


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


def _records(handle: h5py.File, name: str) -> list[dict[str, Any]]:
    if name not in handle:
        return []
    out = []
    for raw in handle[name][...]:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
        if text:
            out.append(json.loads(text))
    return out


def read_rank_meta(path: Path) -> dict[str, Any]:
    """Everything about one rank file except metric values: attrs, records, series lengths.

    Raises DamagedRunError (naming the file and the reason) when it cannot be read.
    """
    try:
        with h5py.File(path, "r", locking=False) as handle:
            attrs = {key: _attr(value) for key, value in handle.attrs.items()}
            schema, version = attrs.get("schema"), attrs.get("schema_version")
            if schema != C.RANK_SCHEMA or not isinstance(version, int):
                raise DamagedRunError(f"{path.name}: not a yprov4ml_hpc rank file (schema {schema!r})")
            if version > C.RANK_SCHEMA_VERSION:
                raise DamagedRunError(
                    f"{path.name}: schema version {version} is newer than this reader "
                    f"({C.RANK_SCHEMA_VERSION}); upgrade yprov4ml-hpc"
                )
            series = []
            metrics = handle.get(C.METRICS_GROUP)
            for ctx_group in metrics.values() if metrics is not None else []:
                for group in ctx_group.values():
                    lengths = [group[k].shape[0] for k in ("step", "value", "time_ns") if k in group]
                    series.append(
                        {
                            "name": _attr(group.attrs["name"]),
                            "context": _attr(group.attrs["context"]),
                            "h5path": group.name,
                            "count": int(min(lengths)) if len(lengths) == 3 else 0,
                        }
                    )
            return {
                "attrs": attrs,
                "params": _records(handle, C.PARAMS_DATASET),
                "artifacts": _records(handle, C.ARTIFACTS_DATASET),
                "events": _records(handle, C.EVENTS_DATASET),
                "series": series,
                "file_bytes": path.stat().st_size,
            }
    except DamagedRunError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError) as exc:
        raise DamagedRunError(f"{path.name}: unreadable ({exc})") from exc


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
        """The arrays of one series; ``context=None`` means the default context."""
        ctx = C.DEFAULT_CONTEXT if context is None else str(getattr(context, "value", context))
        try:
            path, h5path, count = self._index[(metric, ctx, rank)]
        except KeyError:
            raise KeyError(
                f"no series {metric!r} in context {ctx!r} on rank {rank}; see series_keys()"
            ) from None
        with h5py.File(path, "r", locking=False) as handle:
            group = handle[h5path]
            return Series(
                metric,
                ctx,
                rank,
                np.asarray(group["step"][:count], dtype=np.int64),
                np.asarray(group["value"][:count], dtype=np.float64),
                np.asarray(group["time_ns"][:count], dtype=np.int64),
            )

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
    for path in sorted(ranks_dir.iterdir()):
        match = _RANK_FILE.match(path.name)
        if not match:
            continue
        try:
            meta = read_rank_meta(path)
        except DamagedRunError as exc:
            if strict:
                raise
            problems.append((path.name, str(exc)))
            continue
        meta["path"] = path
        rank = int(meta["attrs"].get("rank", int(match.group(1))))
        metas[rank] = meta
    if not metas and not problems:
        raise StorageError(f"{ranks_dir} holds no rank files; was the run started?")
    return RunData(root, metas, problems)
