"""The rank file's metadata record: what ``read_rank_meta`` returns, as one JSON text.

``_fold.write_layout`` holds every array of a rank in memory when it writes the HDF5 layout, so
it also stores one scalar UTF-8 string dataset, ``/meta`` (``C.META_DATASET``), with the root
attributes, the series (names, HDF5 paths, lengths and :class:`SeriesStats`) and the params,
artifacts and events.  A reader opens the file, reads that one dataset and checks it: about
0.3 ms, where reading ~40 root attributes, every series group and every point took ~8 ms.

The record is a copy of what the layout says, never the only copy: a file without one (written
before it existed) or with one this reader cannot check is read from its layout, which stays
complete, so older readers and other tools read new files as before.

Format, version 1 (``META_RECORD_VERSION``)::

    {"version": 1,
     "attrs":   {root attribute: its value as h5py reads it back (str, int, bool or float)},
     "series":  [{"name", "context", "h5path", "count",
                  "stats": {every field of SeriesStats}}, ...]   # in the layout's order
     "records": {"params": [text, ...], "artifacts": [...], "events": [...]}}

``records`` holds the stored JSON texts (the reader parses them as it parses the datasets); it is
left out when they are larger than ``META_RECORD_MAX_INLINE_BYTES`` (a huge param is then not
stored twice) and the reader reads the three datasets.  A float JSON cannot hold (NaN, +-inf) is
written as ``{"f64": "<16 hex digits: its IEEE 754 bits, big endian>"}``, so every float comes
back bit for bit, a NaN's sign and payload included.

:func:`decode_meta_record` trusts nothing: any type, range or consistency it cannot vouch for is
a :class:`MetaRecordError`, and the reader then reads the layout (see ``_reader/_rank.py``).
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _constants as C
from ._series_stats import SeriesStats

__all__ = [
    "META_RECORD_MAX_INLINE_BYTES",
    "META_RECORD_VERSION",
    "MetaRecord",
    "MetaRecordError",
    "RecordSeries",
    "decode_meta_record",
    "encode_meta_record",
    "plain_attr",
]

META_RECORD_VERSION = 1
# Params, artifacts and events are copied into the record only up to this many bytes of text.
META_RECORD_MAX_INLINE_BYTES = 64 * 1024
_RECORD_NAMES = (C.PARAMS_DATASET, C.ARTIFACTS_DATASET, C.EVENTS_DATASET)
_STATS_COUNTS = ("count", "nan_count", "valid")
_STATS_TIMES = ("first_time_ns", "last_time_ns")
_STATS_FLOATS = ("min", "max", "sum", "last", "last_finite", "median_interval_s")
_STATS_KEYS = {*_STATS_COUNTS, *_STATS_TIMES, *_STATS_FLOATS}
_SERIES_KEYS = {"name", "context", "h5path", "count", "stats"}
_METRICS_PREFIX = f"/{C.METRICS_GROUP}/"
_INT64 = (-(2**63), 2**63 - 1)
_BITS = struct.Struct(">d")
_TOP_KEYS = {"version", "attrs", "series", "records"}


class MetaRecordError(ValueError):
    """The record is not one this reader can vouch for (the layout is read instead)."""


@dataclass(frozen=True)
class RecordSeries:
    """One series as the record describes it."""

    name: str
    context: str
    h5path: str
    count: int
    stats: SeriesStats


@dataclass(frozen=True)
class MetaRecord:
    """A decoded record: the raw root attributes (to be checked like the file's own), the
    series, and the record texts per dataset (None: not copied, read the datasets)."""

    attrs: dict[str, Any]
    series: tuple[RecordSeries, ...]
    records: dict[str, tuple[str, ...]] | None


def plain_attr(value: Any) -> Any:
    """An HDF5 attribute value as readers use it: NumPy scalars as Python ones, text as a str
    that UTF-8 can encode.  The one conversion for the reader's attributes and the record's."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):
        # h5py decodes invalid UTF-8 with surrogateescape; such a str cannot be encoded later
        # (merge writes JSON/HDF5), so replace the bad bytes now, as for bytes above.
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    return value


# --- floats --------------------------------------------------------------------------------------
def _encode_float(value: float) -> float | dict[str, str]:
    return value if math.isfinite(value) else {"f64": _BITS.pack(value).hex()}


def _decode_float(raw: Any, what: str) -> float:
    if type(raw) is float:  # json gives float only for a number with '.' or an exponent
        return raw
    bits = raw.get("f64") if type(raw) is dict and raw.keys() == {"f64"} else None
    if type(bits) is str and len(bits) == 16:
        try:
            value: float = _BITS.unpack(bytes.fromhex(bits))[0]
        except ValueError:
            raise MetaRecordError(f"{what}: {raw!r} is not 16 hex digits") from None
        if not math.isfinite(value):  # a finite float is always written as a number
            return value
    raise MetaRecordError(f"{what}: {raw!r} is not a float")


def _decode_int(raw: Any, what: str, low: int = _INT64[0]) -> int:
    if type(raw) is not int or not low <= raw <= _INT64[1]:
        raise MetaRecordError(f"{what}: {raw!r} is not an integer in [{low}, {_INT64[1]}]")
    return raw


def _decode_str(raw: Any, what: str) -> str:
    if type(raw) is not str:
        raise MetaRecordError(f"{what}: {raw!r} is not a str")
    return raw


# --- writing -------------------------------------------------------------------------------------
def _encode_attr(value: Any) -> Any:
    if isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return _encode_float(value)
    raise MetaRecordError(f"root attribute {value!r} ({type(value).__name__}) has no form in the record")


def _encode_stats(stats: SeriesStats) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in (*_STATS_COUNTS, *_STATS_TIMES, *_STATS_FLOATS):
        value = getattr(stats, name)
        out[name] = _encode_float(value) if isinstance(value, float) else value
    return out


def encode_meta_record(
    attrs: Mapping[str, Any],
    series: Iterable[RecordSeries],
    records: Mapping[str, Sequence[str]],
) -> str:
    """The record's JSON text.  ``attrs`` are the root attributes as a reader reads them back,
    ``series`` in the order a reader iterates the layout, ``records`` the stored texts.

    Raises MetaRecordError for an attribute value the record cannot hold (the caller then
    writes no record: the layout alone is complete).
    """
    body: dict[str, Any] = {
        "version": META_RECORD_VERSION,
        "attrs": {key: _encode_attr(value) for key, value in attrs.items()},
        "series": [
            {
                "name": s.name,
                "context": s.context,
                "h5path": s.h5path,
                "count": s.count,
                "stats": _encode_stats(s.stats),
            }
            for s in series
        ],
    }
    texts = {name: list(records.get(name, ())) for name in _RECORD_NAMES}
    every = [text for values in texts.values() for text in values]
    # A text with a NUL would be cut there by HDF5 in its dataset but not here: never copied.
    if sum(len(t) for t in every) <= META_RECORD_MAX_INLINE_BYTES and not any("\x00" in t for t in every):
        body["records"] = texts
    return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


# --- reading -------------------------------------------------------------------------------------
def _decode_stats(raw: Any) -> SeriesStats:
    if type(raw) is not dict or raw.keys() != _STATS_KEYS:
        raise MetaRecordError(f"stats must be an object with exactly {sorted(_STATS_KEYS)}")
    values: dict[str, Any] = {name: _decode_int(raw[name], name, 0) for name in _STATS_COUNTS}
    for name in _STATS_TIMES:
        values[name] = None if raw[name] is None else _decode_int(raw[name], name)
    for name in _STATS_FLOATS:
        values[name] = None if raw[name] is None else _decode_float(raw[name], name)
    stats = SeriesStats(**values)
    _check_stats(stats)
    return stats


def _check_stats(s: SeriesStats) -> None:
    """What :meth:`SeriesStats.of` always gives, and what merge relies on (a min when there are
    valid points, a last value when there are points ...)."""
    empty, none_valid = s.count == 0, s.valid == 0
    no_times = s.first_time_ns is None or s.last_time_ns is None
    interval = s.median_interval_s
    problems = [
        (s.count != s.nan_count + s.valid, "count != nan_count + valid"),
        ((s.min is None) != none_valid or (s.max is None) != none_valid, "min/max must exist iff valid > 0"),
        (s.min is not None and s.max is not None and not s.min <= s.max, "min > max or NaN"),
        (none_valid and s.sum != 0.0, "sum of no valid points must be 0.0"),
        ((s.last is None) != empty, "last must exist iff count > 0"),
        (s.last_finite is not None and (empty or not math.isfinite(s.last_finite)), "last_finite not finite"),
        (no_times != empty or (s.first_time_ns is None) != (s.last_time_ns is None), "times iff count > 0"),
        (interval is not None and (s.count < 2 or math.isnan(interval)), "median interval without 2 points"),
    ]
    for bad, reason in problems:
        if bad:
            raise MetaRecordError(reason)


def _decode_series(raw: Any, seen: set[str]) -> RecordSeries:
    if type(raw) is not dict or raw.keys() != _SERIES_KEYS:
        raise MetaRecordError(f"not an object with exactly {sorted(_SERIES_KEYS)}")
    name, context = _decode_str(raw["name"], "name"), _decode_str(raw["context"], "context")
    h5path = _decode_str(raw["h5path"], "h5path")
    if not h5path.startswith(_METRICS_PREFIX) or h5path in seen:
        raise MetaRecordError(f"h5path {h5path!r} is outside {_METRICS_PREFIX} or repeated")
    seen.add(h5path)
    count = _decode_int(raw["count"], "count", 0)
    stats = _decode_stats(raw["stats"])
    if stats.count != count:
        raise MetaRecordError(f"count {count} != stats count {stats.count}")
    return RecordSeries(name, context, h5path, count, stats)


def _decode_attrs(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise MetaRecordError("attrs is not an object")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, (bool, int, str)):
            out[key] = value
        else:
            out[key] = _decode_float(value, f"attribute {key!r}")
    return out


def _decode_records(raw: Any) -> dict[str, tuple[str, ...]] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or raw.keys() != set(_RECORD_NAMES):
        raise MetaRecordError(f"records must be an object with exactly {list(_RECORD_NAMES)}")
    out = {}
    for name in _RECORD_NAMES:
        texts = raw[name]
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise MetaRecordError(f"records {name!r} is not a list of str")
        out[name] = tuple(texts)
    return out


def decode_meta_record(text: str) -> MetaRecord | None:
    """The checked record; None if it is of another version (read the layout, which every
    version keeps complete).  Raises MetaRecordError for anything malformed."""
    try:
        body = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise MetaRecordError(f"not JSON ({type(exc).__name__})") from None
    if not isinstance(body, dict):
        raise MetaRecordError("not a JSON object")
    if body.get("version") != META_RECORD_VERSION or type(body.get("version")) is not int:
        return None
    if not body.keys() <= _TOP_KEYS or not isinstance(body.get("series"), list):
        raise MetaRecordError(f"keys {sorted(body)} are not {sorted(_TOP_KEYS)}, or no series list")
    seen: set[str] = set()
    series = []
    for index, raw in enumerate(body["series"]):
        try:
            series.append(_decode_series(raw, seen))
        except MetaRecordError as exc:
            raise MetaRecordError(f"series {index}: {exc}") from None
    return MetaRecord(_decode_attrs(body.get("attrs")), tuple(series), _decode_records(body.get("records")))

