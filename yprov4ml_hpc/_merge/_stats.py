"""Numbers shared by the summary and the PROV graph: the combination over ranks of per-rank
series statistics (:class:`SeriesStats`, computed by the reader), and JSON-safe floats.

NaN policy (one rule everywhere): statistics skip NaN points (``nan_count`` says how many
there were); +-inf are real values and take part (a diverged loss must show ``max = inf``).
A statistic that is not finite is written as ``null`` in summary.json (JSON has no NaN)
and as the xsd:double lexical forms ``NaN``/``INF``/``-INF`` in PROV.

Sums are combined in rank order with plain float additions, so an online finalize and an
offline merge of the same files give bit-identical results.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from .._errors import MergeError
from .._reader import RankMeta, SeriesStats

__all__ = [
    "SeriesAggregate",
    "aggregate_series",
    "json_number",
]


def json_number(value: float | int | None) -> float | int | None:
    """A number JSON can hold: ``None`` for NaN and +-inf."""
    if value is None or isinstance(value, int):
        return value
    return value if math.isfinite(value) else None


@dataclass
class SeriesAggregate:
    """One (metric, context) over ranks: count, NaN-aware min/max/mean, mean of last values."""

    name: str
    context: str
    h5path: str
    count: int = 0
    nan_count: int = 0
    valid: int = 0
    total: float = 0.0
    min: float | None = None
    max: float | None = None
    min_rank: int | None = None
    max_rank: int | None = None
    min_host: str | None = None
    max_host: str | None = None
    min_run: int = 0
    max_run: int = 0
    ranks: list[int] = field(default_factory=list)
    first_time_ns: int | None = None
    last_time_ns: int | None = None
    # Each rank's last value, only from the latest run that has the series (a chained job's
    # "last" is where the final job left it).
    last_run: int = -1
    lasts: list[float] = field(default_factory=list)

    def add(self, run: int, rank: int, host: str, stats: SeriesStats) -> None:
        self.count += stats.count
        self.nan_count += stats.nan_count
        self.valid += stats.valid
        self.total += stats.sum
        self.ranks.append(rank)
        low, high = stats.min, stats.max
        if low is not None and (self.min is None or low < self.min):
            self.min, self.min_rank, self.min_host, self.min_run = low, rank, host, run
        if high is not None and (self.max is None or high > self.max):
            self.max, self.max_rank, self.max_host, self.max_run = high, rank, host, run
        first, last_t = stats.first_time_ns, stats.last_time_ns
        if first is not None and (self.first_time_ns is None or first < self.first_time_ns):
            self.first_time_ns = first
        if last_t is not None and (self.last_time_ns is None or last_t > self.last_time_ns):
            self.last_time_ns = last_t
        if stats.last is not None:
            if run > self.last_run:
                self.last_run, self.lasts = run, []
            if run == self.last_run:
                self.lasts.append(stats.last)

    @property
    def mean(self) -> float | None:
        if not self.valid:
            return None
        return self.total / self.valid

    @property
    def last(self) -> float | None:
        """Mean over ranks of each rank's last value (ranks whose last value is NaN skipped)."""
        kept = [v for v in self.lasts if not math.isnan(v)]
        if not kept:
            return None
        return math.fsum(kept) / len(kept) if all(math.isfinite(v) for v in kept) else sum(kept) / len(kept)


def aggregate_series(
    ranks: Iterable[tuple[int, int, str, RankMeta]],
) -> dict[tuple[str, str], SeriesAggregate]:
    """Combine ``(run index, rank, host, meta)`` in the given order; keys sorted (context, name)."""
    out: dict[tuple[str, str], SeriesAggregate] = {}
    for run, rank, host, meta in ranks:
        for s in meta.series:
            if s.stats is None:
                raise MergeError(f"rank {rank}: series {s.name!r} was read without statistics (stats=True)")
            key = (s.context, s.name)
            agg = out.get(key)
            if agg is None:
                agg = out[key] = SeriesAggregate(s.name, s.context, s.h5path)
            agg.add(run, rank, host, s.stats)
    return {key: out[key] for key in sorted(out)}
