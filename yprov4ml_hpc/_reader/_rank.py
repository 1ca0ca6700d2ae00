"""Reading one rank file into a :class:`RankMeta`, trusting nothing in it.

A run directory may come from anyone: every object is checked before it is used (hard links
only, data inside the file, 1-D numeric series, JSON records with their key, integer
attributes in range, the rank attribute equal to the file name's).

Two sources, one result.  A file written by this version holds a metadata record (``/meta``,
``_meta_record.py``): the root attributes, every series with its statistics and the records
in one JSON text, read in one go.  The record is used when it is there and passes every check
the layout's values pass (the same ``_check_attrs``, the same record parsing, plus the
record's own: types, ranges, counts that add up); otherwise (an older file, a record of
another version, or one that fails any check: a crafted or damaged file) the layout itself is
read and checked as before, and its verdict, a RankMeta or a DamagedRunError, is the answer.
A record can make a read cheaper, never let through what the layout's checks refuse.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .. import _constants as C
from .._errors import DamagedRunError
from .._meta_record import MetaRecord, decode_meta_record
from .._meta_record import plain_attr as _attr
from ._access import open_rank_file, opened_file, rank_of_file_name
from ._records import RankAttrs, RankMeta, SeriesMeta, SeriesStats, decode_attrs

__all__ = ["MAX_WORLD_SIZE", "read_rank_attrs", "read_rank_meta", "read_series_arrays"]

# A claimed world size is bounded so that listing the missing ranks of a crafted file stays
# cheap (4 Mi ranks is far beyond any MPI job today).
MAX_WORLD_SIZE = 2**22
# Integer root attributes: (key, smallest valid value).  Checked when present.
_INT_ATTRS = {"rank": 0, "world_size": 1, "local_rank": 0, "pid": 0, "start_ns": 0, "end_ns": 0}
# The JSON-lines datasets and the str key every record of each must have.
_RECORD_KEYS = {C.PARAMS_DATASET: "name", C.ARTIFACTS_DATASET: "name", C.EVENTS_DATASET: "event"}


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


def _records(handle: h5py.File, name: str) -> tuple[dict[str, Any], ...]:
    ds = _member(handle, name, h5py.Dataset)
    if ds is None:
        return ()
    if ds.ndim != 1 or h5py.check_string_dtype(ds.dtype) is None:
        raise DamagedRunError(f"{name} is not a list of JSON strings")
    return _parse_records(name, ds[...])


def _parse_records(name: str, texts: Iterable[Any]) -> tuple[dict[str, Any], ...]:
    """The JSON records of dataset ``name`` (as stored, or as copied into the meta record)."""
    key = _RECORD_KEYS[name]
    out = []
    for i, raw in enumerate(texts):
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        if not text:
            continue
        record = json.loads(text)
        # Readers index records by this key (params() by name, merge by name/event).
        if not isinstance(record, dict) or not isinstance(record.get(key), str):
            raise DamagedRunError(f"{name} record {i} is not an object with a str {key!r}")
        out.append(record)
    return tuple(out)


def _check_attrs(attrs: dict[str, Any], file_rank: int | None) -> None:
    """Refuse root attributes that readers would trust: wrong schema or types, absurd sizes, a
    rank that is not the file's own (two files claiming one rank would hide one of them)."""
    schema, version = attrs.get("schema"), attrs.get("schema_version")
    if schema != C.RANK_SCHEMA or type(version) is not int:
        raise DamagedRunError(f"not a yprov4ml_hpc rank file (schema {schema!r})")
    if version > C.RANK_SCHEMA_VERSION:
        raise DamagedRunError(
            f"schema version {version} is newer than this reader ({C.RANK_SCHEMA_VERSION}); "
            "upgrade yprov4ml-hpc"
        )
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


def _root_attrs(handle: h5py.File, path: Path) -> RankAttrs:
    return _typed_attrs({key: _attr(value) for key, value in handle.attrs.items()}, path)


def _typed_attrs(raw: dict[str, Any], path: Path) -> RankAttrs:
    file_rank = rank_of_file_name(path.name)
    _check_attrs(raw, file_rank)
    return decode_attrs(raw, file_rank if file_rank is not None else _int_or_zero(raw.get("rank")))


def _int_or_zero(value: Any) -> int:
    return value if type(value) is int else 0


def _series(group: h5py.Group, handle: h5py.File | None) -> SeriesMeta:
    name, context = _attr(group.attrs.get("name")), _attr(group.attrs.get("context"))
    if not isinstance(name, str) or not isinstance(context, str):
        raise DamagedRunError(f"{group.name}: series name/context is not a string")
    datasets = []
    for key in ("step", "value", "time_ns"):
        ds = _member(group, key, h5py.Dataset)
        if ds is None or ds.ndim != 1 or ds.dtype.kind not in "iuf":
            raise DamagedRunError(f"{group.name}/{key} is missing or not a 1-D numeric dataset")
        datasets.append(ds)
    count = int(min(ds.shape[0] for ds in datasets))
    stats = None
    if handle is not None:
        step, value, time_ns = _arrays(datasets, count)
        stats = SeriesStats.of(step, value, time_ns)
    return SeriesMeta(name, context, str(group.name), count, stats)


def _arrays(datasets: list[h5py.Dataset], count: int) -> tuple[Any, Any, Any]:
    return (
        np.asarray(datasets[0][:count], dtype=np.int64),
        np.asarray(datasets[1][:count], dtype=np.float64),
        np.asarray(datasets[2][:count], dtype=np.int64),
    )


def _wrap(path: Path, exc: Exception) -> DamagedRunError:
    if isinstance(exc, DamagedRunError):
        text = str(exc)
        return DamagedRunError(text if text.startswith(f"{path.name}: ") else f"{path.name}: {text}")
    return DamagedRunError(f"{path.name}: unreadable ({type(exc).__name__}: {exc})")


def read_rank_attrs(path: Path) -> RankAttrs:
    """The checked root attributes of one rank file (one small read: what ``ls`` needs).

    From the file's metadata record when :func:`read_rank_meta` would trust it (the same
    checks), else from the root attributes: one dataset read, 0.5 instead of 1.7 ms a file
    here (HDF5 reads attributes one by one), and ``ls`` shows what ``load_run`` reads."""
    try:
        with open_rank_file(path) as handle:
            meta = _trusted_record(handle, path, stats=False)
            return meta.attrs if meta is not None else _root_attrs(handle, path)
    except Exception as exc:  # anything a crafted or damaged file provokes in h5py/numpy/json
        raise _wrap(path, exc) from exc


def _meta_record(handle: h5py.File, path: Path) -> tuple[MetaRecord, RankAttrs] | None:
    """The file's metadata record and its checked attributes, or None: no record, one of
    another version, or one that fails a check (the caller then reads the layout)."""
    try:
        ds = _member(handle, C.META_DATASET, h5py.Dataset)
        if ds is None or ds.shape != () or h5py.check_string_dtype(ds.dtype) is None:
            return None
        raw = ds[()]
        record = decode_meta_record(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
        if record is None:
            return None
        return record, _typed_attrs(record.attrs, path)
    except Exception:  # noqa: BLE001 - MetaRecordError, DamagedRunError, or h5py's for a damaged record
        return None


def _trusted_record(handle: h5py.File, path: Path, *, stats: bool) -> RankMeta | None:
    """The rank's meta from its metadata record, or None: no record, or one that fails a check."""
    found = _meta_record(handle, path)
    return None if found is None else _meta_from_record(handle, path, *found, stats)


def _meta_from_record(
    handle: h5py.File, path: Path, record: MetaRecord, attrs: RankAttrs, stats: bool
) -> RankMeta | None:
    if record.records is None:  # the records were too large to copy: read as in the layout
        records = {name: _records(handle, name) for name in _RECORD_KEYS}
    else:
        try:
            records = {name: _parse_records(name, record.records[name]) for name in _RECORD_KEYS}
        except (DamagedRunError, ValueError, RecursionError):
            return None  # the layout's copy is read, and judged, instead
    series = [
        SeriesMeta(s.name, s.context, s.h5path, s.count, s.stats if stats else None) for s in record.series
    ]
    return _rank_meta(handle, path, attrs, records, series)


def _meta_from_layout(handle: h5py.File, path: Path, stats: bool) -> RankMeta:
    attrs = _root_attrs(handle, path)
    series = []
    metrics = _member(handle, C.METRICS_GROUP, h5py.Group)
    for ctx_key in metrics if metrics is not None else []:
        ctx_group = _member(metrics, ctx_key, h5py.Group)
        for key in ctx_group:
            series.append(_series(_member(ctx_group, key, h5py.Group), handle if stats else None))
    return _rank_meta(handle, path, attrs, {name: _records(handle, name) for name in _RECORD_KEYS}, series)


def _rank_meta(
    handle: h5py.File,
    path: Path,
    attrs: RankAttrs,
    records: dict[str, tuple[dict[str, Any], ...]],
    series: list[SeriesMeta],
) -> RankMeta:
    source, file_bytes = opened_file(handle, path)  # a journal's .h5, if folded since
    return RankMeta(
        rank=attrs.rank,
        path=source,
        attrs=attrs,
        params=records[C.PARAMS_DATASET],
        artifacts=records[C.ARTIFACTS_DATASET],
        events=records[C.EVENTS_DATASET],
        series=tuple(series),
        file_bytes=file_bytes,
    )


def read_rank_meta(path: Path, *, stats: bool = False) -> RankMeta:
    """Everything about one rank file except metric values; ``stats=True`` adds each series'
    statistics (what a merge needs).  From the file's metadata record when it has a valid one
    (one read), else from its layout (``stats=True`` then reads every point once).

    Raises DamagedRunError (naming the file and the reason) when it cannot be read.
    """
    try:
        with open_rank_file(path) as handle:
            meta = _trusted_record(handle, path, stats=stats)
            return meta if meta is not None else _meta_from_layout(handle, path, stats)
    except Exception as exc:  # anything a crafted or damaged file provokes in h5py/numpy/json
        raise _wrap(path, exc) from exc


def read_series_arrays(path: Path, h5path: str, count: int) -> tuple[Any, Any, Any]:
    """``(step int64, value float64, time_ns int64)`` of one series, its first ``count`` points.

    The file was checked when its meta was read, but it may have changed since: checked again.
    A live journal is read from the fold this process last made of it when that holds the
    ``count`` points (a journal only grows: they are the same points), else as it is now.
    """
    try:
        for latest in (False, True):
            with open_rank_file(path, latest=latest) as handle:
                group = handle.get(h5path) if not latest else handle[h5path]
                if group is None:
                    continue  # the series is newer than the fold this process had
                if not isinstance(group, h5py.Group):
                    raise DamagedRunError(f"{h5path} is not a group")
                datasets = [_member(group, k, h5py.Dataset) for k in ("step", "value", "time_ns")]
                arrays = _arrays(datasets, count)
                if latest or min(len(a) for a in arrays) >= count:
                    return arrays
        raise AssertionError("unreachable: the latest read returns or raises")
    except Exception as exc:
        raise DamagedRunError(
            f"{path.name}: series {h5path} unreadable ({type(exc).__name__}: {exc})"
        ) from exc
