"""Typed records of what a rank file says: frozen dataclasses, picklable (finalize sends them
over MPI) and small (no metric values, only a few statistics per series: :class:`SeriesStats`,
which lives in ``_series_stats.py`` because the writer computes it too).

``decode_attrs`` is the one place where root attributes are typed and JSON-valued attributes
(``versions``, ``command``, ``sampler_info`` ...) decoded; readers never index raw attributes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import _constants as C
from .._series_stats import SeriesStats

__all__ = ["RankAttrs", "RankMeta", "SeriesMeta", "SeriesStats", "decode_attrs", "decode_json"]


def decode_json(raw: Any, default: Any) -> Any:
    """A JSON-valued attribute decoded, or ``default`` if it is absent, not text or not JSON."""
    if not isinstance(raw, str):
        return default
    try:
        return json.loads(raw)
    except ValueError:
        return default


def _str(raw: Any, default: str = "") -> str:
    return default if raw is None else str(raw)


def _int(raw: Any, default: int = 0) -> int:
    return raw if type(raw) is int else default


def _float(raw: Any, default: float | None = 0.0) -> float | None:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        return default
    return float(raw)


@dataclass(frozen=True)
class RankAttrs:
    """The root attributes of one rank file, typed; ``raw`` keeps every attribute as stored."""

    rank: int
    world_size: int
    run_id: str | None
    experiment: str | None
    host: str
    local_rank: int
    local_size: int
    pid: int
    launcher: str
    job_id: str
    status: str
    start_ns: int
    end_ns: int
    updated_ns: int
    prov_detail: str | None
    user_namespace: str
    cwd: str
    flush_interval_s: float
    versions: dict[str, str]
    command: list[str] | str | None
    gpu_ids: list[int]
    sampler_info: dict[str, Any]
    energy_methods: dict[str, str]
    log_calls: int
    flushes: int
    flush_time_s: float
    bytes_written: int
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def wall_time_s(self) -> float | None:
        """Start to end (or, still running, to the last flush); None if unknown."""
        end = self.end_ns or self.updated_ns
        if not self.start_ns or not end or end < self.start_ns:
            return None
        return (end - self.start_ns) / 1e9

    @property
    def merge_status(self) -> str:
        """The status a merge reports: a file still marked running lost its process."""
        return C.STATUS_INCOMPLETE if self.status == C.STATUS_RUNNING else self.status


def decode_attrs(raw: dict[str, Any], file_rank: int) -> RankAttrs:
    """Type the (already checked, see ``_rank._check_attrs``) root attributes of a rank file."""
    versions = decode_json(raw.get("versions"), {})
    command = decode_json(raw.get("command"), raw.get("command"))
    gpu_ids = decode_json(raw.get("gpu_ids"), [])
    info = decode_json(raw.get("sampler_info"), {})
    methods = decode_json(raw.get("energy_methods"), {})
    detail = raw.get("prov_detail")
    return RankAttrs(
        rank=_int(raw.get("rank"), file_rank),
        world_size=_int(raw.get("world_size"), 1),
        run_id=None if raw.get("run_id") is None else str(raw["run_id"]),
        experiment=None if raw.get("experiment") is None else str(raw["experiment"]),
        host=_str(raw.get("host")),
        local_rank=_int(raw.get("local_rank")),
        local_size=_int(raw.get("local_size"), 1),
        pid=_int(raw.get("pid")),
        launcher=_str(raw.get("launcher")),
        job_id=_str(raw.get("job_id")),
        status=_str(raw.get("status"), C.STATUS_RUNNING),
        start_ns=_int(raw.get("start_ns")),
        end_ns=_int(raw.get("end_ns")),
        updated_ns=_int(raw.get("updated_ns")),
        prov_detail=str(detail) if detail in C.PROV_DETAIL_CHOICES else None,
        user_namespace=_str(raw.get("user_namespace")),
        cwd=_str(raw.get("cwd")),
        flush_interval_s=_float(raw.get("flush_interval_s")) or 0.0,
        versions={str(k): str(v) for k, v in versions.items()} if isinstance(versions, dict) else {},
        command=command if isinstance(command, (list, str)) else None,
        gpu_ids=[g for g in gpu_ids if type(g) is int] if isinstance(gpu_ids, list) else [],
        sampler_info=info if isinstance(info, dict) else {},
        energy_methods={str(k): str(v) for k, v in methods.items()} if isinstance(methods, dict) else {},
        log_calls=_int(raw.get("log_calls")),
        flushes=_int(raw.get("flushes")),
        flush_time_s=_float(raw.get("flush_time_s")) or 0.0,
        bytes_written=_int(raw.get("bytes_written")),
        raw=raw,
    )


@dataclass(frozen=True)
class SeriesMeta:
    """One metric series of one rank: original names, where it lives, its length (and stats)."""

    name: str
    context: str
    h5path: str
    count: int
    stats: SeriesStats | None = None

    @property
    def is_sampler(self) -> bool:
        """Written by a background sampler (system/gpu/energy), not by the training loop."""
        return self.context in C.SAMPLER_CONTEXTS


@dataclass(frozen=True)
class RankMeta:
    """Everything about one rank file except metric values.

    ``params``/``artifacts``/``events`` are the JSON records as logged (each a dict with a str
    ``name`` / ``name`` / ``event``): their keys are the user's, so they stay dicts.
    """

    rank: int
    path: Path | None
    attrs: RankAttrs
    params: tuple[dict[str, Any], ...]
    artifacts: tuple[dict[str, Any], ...]
    events: tuple[dict[str, Any], ...]
    series: tuple[SeriesMeta, ...]
    file_bytes: int

    @property
    def has_stats(self) -> bool:
        return all(s.stats is not None for s in self.series)
