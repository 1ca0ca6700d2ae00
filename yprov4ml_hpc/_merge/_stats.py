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

import functools
import math
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import cast

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
        kept = [v for v in self.lasts if v == v]  # noqa: PLR0124 (NaN is the one float unequal to itself)
        if not kept:
            return None
        if math.inf in kept or -math.inf in kept:  # the only non-finite values left
            return sum(kept) / len(kept)
        return math.fsum(kept) / len(kept)


_Member = tuple[int, int, str]  # (run index, rank, host): who logged one rank's statistics


def _first_extreme(values: list[float | None], pick: Callable[[Iterable[float]], float]) -> int | None:
    """Index of the first minimum (``pick=min``) or maximum among the values that are not None:
    the member that ``SeriesAggregate.add`` keeps (a later equal value never replaces it).

    ``min``/``max`` keep the first of equal values and compare exactly as ``add`` does (NaN
    included), and ``index`` finds that first one again (identity first, then equality), all in
    C: a key function per member costs ~0.3 s per series at 10^5 ranks."""
    if None in values:
        kept = [(v, i) for i, v in enumerate(values) if v is not None]
        if not kept:
            return None
        best = pick(v for v, _ in kept)
        return next(i for v, i in kept if v is best)
    if not values:
        return None
    return values.index(pick(cast(list[float], values)))


def _combine(
    name: str, context: str, h5path: str, who: list[_Member], stats: list[SeriesStats]
) -> SeriesAggregate:
    """One series over ranks, column by column: the same numbers as ``SeriesAggregate.add``
    called member by member (first minimum/maximum wins, sums added in order), faster: each
    column is one list comprehension, reduced by builtins."""
    agg = SeriesAggregate(name, context, h5path)
    agg.count = sum([s.count for s in stats])  # ints: exact in any order
    agg.nan_count = sum([s.nan_count for s in stats])
    agg.valid = sum([s.valid for s in stats])
    # reduce, not sum(): Python 3.12's sum() compensates float rounding; this must not.
    agg.total = functools.reduce(operator.add, [s.sum for s in stats], 0.0)
    agg.ranks = [w[1] for w in who]
    lows = [s.min for s in stats]
    i = _first_extreme(lows, min)
    if i is not None:
        agg.min, (agg.min_run, agg.min_rank, agg.min_host) = lows[i], who[i]
    highs = [s.max for s in stats]
    i = _first_extreme(highs, max)
    if i is not None:
        agg.max, (agg.max_run, agg.max_rank, agg.max_host) = highs[i], who[i]
    firsts = [t for s in stats if (t := s.first_time_ns) is not None]
    agg.first_time_ns = min(firsts) if firsts else None
    lasts_t = [t for s in stats if (t := s.last_time_ns) is not None]
    agg.last_time_ns = max(lasts_t) if lasts_t else None
    lasts = [s.last for s in stats]
    runs = {w[0] for w in who}
    if len(runs) == 1 and None not in lasts:  # one run (finalize, most merges), every rank has one
        agg.last_run, agg.lasts = runs.pop(), cast(list[float], lasts)
    else:
        with_last = [(w[0], v) for w, v in zip(who, lasts, strict=True) if v is not None]
        if with_last:
            agg.last_run = max(run for run, _ in with_last)
            agg.lasts = [value for run, value in with_last if run == agg.last_run]
    return agg


def aggregate_series(
    ranks: Iterable[tuple[int, int, str, RankMeta]],
) -> dict[tuple[str, str], SeriesAggregate]:
    """Combine ``(run index, rank, host, meta)`` in the given order; keys sorted (context, name)."""
    # (context, name) -> (name, context, first h5path, who, stats): two appends per series of
    # every rank (10^6 at 10^5 ranks), the one (run, rank, host) tuple shared by a rank's series.
    found: dict[tuple[str, str], tuple[str, str, str, list[_Member], list[SeriesStats]]] = {}
    for run, rank, host, meta in ranks:
        who = (run, rank, host)
        for s in meta.series:
            stats = s.stats
            if stats is None:
                raise MergeError(f"rank {rank}: series {s.name!r} was read without statistics (stats=True)")
            key = (s.context, s.name)
            entry = found.get(key)
            if entry is None:
                entry = found[key] = (s.name, s.context, s.h5path, [], [])
            entry[3].append(who)
            entry[4].append(stats)
    return {key: _combine(*found[key]) for key in sorted(found)}
