"""The rank journal: an append-only file of checksummed frames (``ranks/rank_NNNNNN.journal``).

While a run is alive its rank writes only this file, with plain ``os.write`` calls from a
background thread (``_writer.py``); at close the journal is folded into the HDF5 rank file
(``_fold.py``).  Why a journal and not HDF5 with SWMR: a kill or a full disk inside an HDF5
flush can damage data flushed long before (faults F1/F23), and h5py holds the GIL through
each call, so a background HDF5 writer still stalls the training thread for milliseconds.
``os.write`` releases the GIL, and an append-only file has one failure mode: a torn tail.

Frame layout (little endian), 16 header bytes then ``length`` payload bytes::

    magic  4s   b"YPJ1"
    kind   u8   HEADER | SERIES | POINTS | RECORD | ATTRS
    pad    3x
    length u32  payload bytes
    crc32  u32  zlib.crc32 of the first 12 header bytes, then of the payload

Payloads:

- HEADER (first frame, once): JSON object of the root attributes (schema, run id, rank, ...).
- SERIES: ``u32 id`` then UTF-8 JSON ``[name, context]``.  Several ids may name one series
  (one per producing ring); their points are concatenated in frame order.
- POINTS: ``u32 id, u32 n`` then raw ``int64 step[n]``, ``float64 value[n]``,
  ``int64 time_ns[n]``: 24 bytes a point plus 24 a batch (24.006 B/point for 4096-point batches).
- RECORD: ``u8 dataset`` (0 params, 1 artifacts, 2 events) then the record's UTF-8 JSON text.
- ATTRS: JSON object of root attributes to set (counters, status, end time); later wins.

A reader takes frames up to the first incomplete one, bad magic or bad checksum: whatever a
kill or a full disk leaves is readable up to the last completed write.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import _constants as C

__all__ = [
    "FRAME_HEADER",
    "JournalContents",
    "JournalError",
    "JournalParser",
    "encode_attrs",
    "encode_header",
    "encode_points",
    "encode_record",
    "encode_series",
    "iter_frames",
    "json_default",
    "parse_journal",
    "points_frame_parts",
    "read_journal",
]

MAGIC = b"YPJ1"
KIND_HEADER, KIND_SERIES, KIND_POINTS, KIND_RECORD, KIND_ATTRS = 1, 2, 3, 4, 5
FRAME_HEADER = struct.Struct("<4sB3xII")  # magic, kind, length, crc32
_PREFIX = struct.Struct("<4sB3xI")  # the part of the header the checksum covers
_ID = struct.Struct("<I")
_ID_COUNT = struct.Struct("<II")
RECORD_DATASETS = (C.PARAMS_DATASET, C.ARTIFACTS_DATASET, C.EVENTS_DATASET)
# A frame larger than this is damage, not data: a 4096-point batch is 98 KB, a record is what
# the user logged (a 10 MB param is tested); the bound keeps a flipped length from allocating GBs.
MAX_FRAME_BYTES = 1 << 30


def _frame(kind: int, payload: bytes) -> bytes:
    prefix = _PREFIX.pack(MAGIC, kind, len(payload))
    crc = zlib.crc32(payload, zlib.crc32(prefix))
    return prefix + _ID.pack(crc) + payload


def json_default(value: object) -> object:
    """Make NumPy scalars, paths and other odd values JSON-serialisable without losing type."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return repr(value)


def _json(value: object) -> bytes:
    return json.dumps(value, default=json_default, ensure_ascii=False).encode("utf-8")


def encode_header(attrs: Mapping[str, object]) -> bytes:
    return _frame(KIND_HEADER, _json(dict(attrs)))


def encode_series(series_id: int, name: str, context: str) -> bytes:
    return _frame(KIND_SERIES, _ID.pack(series_id) + _json([name, context]))


# zlib.crc32 releases the GIL for buffers over 5 KiB.  A producer (the training thread) that
# checksums a batch at hand-off does it in pieces below that: a release there would let the
# writer thread take the GIL in the middle of a log_metric call and stall it for milliseconds.
_GIL_HELD_PIECE = 4096


def points_frame_parts(
    series_id: int,
    step: np.ndarray | list[np.ndarray],
    value: np.ndarray | list[np.ndarray],
    time_ns: np.ndarray | list[np.ndarray],
    *,
    keep_gil: bool = False,
) -> list[bytes | memoryview]:
    """One batch as the buffers ``os.writev`` writes, without copying the arrays.

    Each column may be given in pieces (a ring's pending points wrap around its end): the
    pieces of a column are consecutive in the frame, so a ring's drain is one frame, written
    or not as a whole.  Arrays must be int64/float64/int64 and must not change until the
    frame is written.  ``keep_gil``: checksum without ever releasing the GIL (for the
    training thread; a little slower).
    """
    columns = [
        [np.ascontiguousarray(a, dtype=t).data.cast("B") for a in (p if isinstance(p, list) else [p])]
        for p, t in ((step, "<i8"), (value, "<f8"), (time_ns, "<i8"))
    ]
    n = sum(len(piece) for piece in columns[1]) // 8
    id_count = _ID_COUNT.pack(series_id, n)
    prefix = _PREFIX.pack(MAGIC, KIND_POINTS, len(id_count) + 24 * n)
    crc = zlib.crc32(id_count, zlib.crc32(prefix))
    parts: list[bytes | memoryview] = []
    for column in columns:
        for piece in column:
            if keep_gil:
                for at in range(0, len(piece), _GIL_HELD_PIECE):
                    crc = zlib.crc32(piece[at : at + _GIL_HELD_PIECE], crc)
            else:
                crc = zlib.crc32(piece, crc)
            parts.append(piece)
    return [prefix + _ID.pack(crc) + id_count, *parts]


def encode_points(series_id: int, step: np.ndarray, value: np.ndarray, time_ns: np.ndarray) -> bytes:
    """One batch as one frame; the arrays are copied (callers may reuse them at once)."""
    return b"".join(points_frame_parts(series_id, step, value, time_ns))


def encode_record(dataset: str, text: str) -> bytes:
    return _frame(KIND_RECORD, bytes((RECORD_DATASETS.index(dataset),)) + text.encode("utf-8"))


def encode_attrs(attrs: Mapping[str, object]) -> bytes:
    return _frame(KIND_ATTRS, _json(dict(attrs)))


def iter_frames(data: bytes | memoryview) -> Iterator[tuple[int, memoryview, int]]:
    """``(kind, payload, end offset)`` of each good frame, stopping at the first bad one."""
    view = memoryview(data)
    offset, size, head = 0, len(view), FRAME_HEADER.size
    while offset + head <= size:
        magic, kind, length, crc = FRAME_HEADER.unpack_from(view, offset)
        end = offset + head + length
        if magic != MAGIC or length > MAX_FRAME_BYTES or end > size:
            return
        payload = view[offset + head : end]
        if zlib.crc32(payload, zlib.crc32(view[offset : offset + 12])) != crc:
            return
        yield kind, payload, end
        offset = end


@dataclass
class JournalContents:
    """What the good frames of a journal say, in the shape of an HDF5 rank file."""

    attrs: dict[str, Any] = field(default_factory=dict)
    # (name, context) -> list of (step, value, time_ns) batches, in frame order
    series: dict[tuple[str, str], list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = field(
        default_factory=dict
    )
    records: dict[str, list[str]] = field(default_factory=lambda: {d: [] for d in RECORD_DATASETS})
    good_bytes: int = 0  # end of the last good frame
    total_bytes: int = 0  # file size when read (more: a torn or damaged tail)


class JournalError(ValueError):
    """The journal's good frames do not describe a rank (no header, an unknown series id...)."""


class JournalParser:
    """Parse a journal in pieces, as it grows: :meth:`feed` the bytes from :attr:`good_bytes` on.

    A journal only grows (its writer appends whole frames; after a failed write it truncates
    back to its last good frame, never below a frame a reader could have read), so the good
    frames already parsed stay the journal's prefix and a live reader parses only what was
    appended since.  ``contents`` is what the frames parsed so far say.
    """

    def __init__(self) -> None:
        self.contents = JournalContents()
        self._names: dict[int, tuple[str, str]] = {}
        # Where the last good frame starts, and its 16 header bytes (their crc covers the
        # frame): whether the bytes parsed are still the file's is one small read.
        self.last_frame_start = 0
        self.last_frame_header = b""

    @property
    def good_bytes(self) -> int:
        return self.contents.good_bytes

    def feed(self, data: bytes | memoryview) -> int:
        """Parse ``data``, the journal's bytes from :attr:`good_bytes` on; return the number of
        good frames taken (0: none complete yet).  Raises JournalError for frames that do not
        describe a rank; the parser is then unusable."""
        out, names, base = self.contents, self._names, self.contents.good_bytes
        out.total_bytes = base + len(data)
        start, taken = 0, 0
        for kind, payload, end in iter_frames(data):
            self._take(kind, payload, out, names)
            self.last_frame_start = base + start
            self.last_frame_header = bytes(data[start : start + FRAME_HEADER.size])
            out.good_bytes = base + end
            start, taken = end, taken + 1
        return taken

    @staticmethod
    def _take(
        kind: int, payload: memoryview, out: JournalContents, names: dict[int, tuple[str, str]]
    ) -> None:
        if kind == KIND_HEADER:
            if out.good_bytes:
                raise JournalError("a second header frame")
            out.attrs.update(json.loads(bytes(payload)))
        elif not out.good_bytes:
            raise JournalError("the first frame is not a header")
        elif kind == KIND_POINTS:
            series_id, n = _ID_COUNT.unpack_from(payload)
            if len(payload) != _ID_COUNT.size + 24 * n or series_id not in names:
                raise JournalError(f"points frame of series {series_id} is inconsistent")
            body = payload[_ID_COUNT.size :]
            arrays = (
                np.frombuffer(body[: 8 * n], dtype="<i8").astype(np.int64),
                np.frombuffer(body[8 * n : 16 * n], dtype="<f8").astype(np.float64),
                np.frombuffer(body[16 * n :], dtype="<i8").astype(np.int64),
            )
            out.series[names[series_id]].append(arrays)
        elif kind == KIND_SERIES:
            (series_id,) = _ID.unpack_from(payload)
            name, context = json.loads(bytes(payload[_ID.size :]))
            if not isinstance(name, str) or not isinstance(context, str):
                raise JournalError(f"series {series_id}: name/context is not a string")
            names[series_id] = (name, context)
            out.series.setdefault((name, context), [])
        elif kind == KIND_RECORD:
            index = payload[0]
            if index >= len(RECORD_DATASETS):
                raise JournalError(f"record frame for unknown dataset {index}")
            out.records[RECORD_DATASETS[index]].append(bytes(payload[1:]).decode("utf-8"))
        elif kind == KIND_ATTRS:
            out.attrs.update(json.loads(bytes(payload)))
        else:
            raise JournalError(f"unknown frame kind {kind}")

    def result(self) -> JournalContents:
        """The contents parsed so far; JournalError if not even the header frame is complete."""
        if not self.contents.good_bytes:
            raise JournalError("no complete header frame (the rank died while creating it)")
        return self.contents


def parse_journal(data: bytes | memoryview) -> JournalContents:
    parser = JournalParser()
    parser.feed(data)
    return parser.result()


def read_journal(path: Path) -> JournalContents:
    """Read a journal that may be growing: one read of what is there now, good frames only."""
    with open(path, "rb") as handle:
        data = handle.read()
    return parse_journal(data)
