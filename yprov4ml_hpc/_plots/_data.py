"""NumPy side of the plots: series of many ranks reduced to a few hundred points to draw.

Nothing here imports matplotlib, so it is testable and cheap.  Memory stays bounded by
(ranks x points drawn), whatever the number of logged steps: long series are averaged into
bins first, because a 10^6-step curve drawn at 900 px wide shows nothing a 800-bin mean
does not.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .._reader import Series

__all__ = [
    "Band",
    "band_over_steps",
    "band_over_time",
    "cumulative_sum_over_time",
    "in_logging_order",
    "log2_ratio_to_median",
    "rate_of",
    "safe_filename",
    "step_starts",
    "steps_repeat",
]

FloatArray = npt.NDArray[np.float64]
MAX_POINTS = 800


@dataclass
class Band:
    """Per-x statistics over ranks: the median line and the quartile and min-max bands."""

    x: FloatArray
    median: FloatArray
    low: FloatArray
    high: FloatArray
    q25: FloatArray
    q75: FloatArray
    count: int  # how many series went in
    present: npt.NDArray[np.int64] | None = None  # how many have a value at each x


def _finite(values: npt.NDArray[np.float64]) -> FloatArray:
    """+-inf cannot be drawn; a diverged point becomes a gap rather than breaking the axis."""
    out = np.asarray(values, dtype=np.float64).copy()
    out[~np.isfinite(out)] = np.nan
    return out


def _reduce(x: FloatArray, matrix: FloatArray, count: int) -> Band:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: a gap is right
        q = np.nanpercentile(matrix, [0, 25, 50, 75, 100], axis=0) if matrix.size else np.empty((5, 0))
    present = np.count_nonzero(~np.isnan(matrix), axis=0).astype(np.int64)
    return Band(x, q[2], q[0], q[4], q[1], q[3], count, present)


def steps_repeat(series: Sequence[Series]) -> bool:
    """Whether any rank logged a step twice or went back (yProv4ML scripts often log every
    batch with ``step=epoch``): such a series cannot be drawn over its steps."""
    return any(len(s) > 1 and bool(np.any(np.diff(s.step) <= 0)) for s in series)


def in_logging_order(s: Series) -> Series:
    """The series with its steps replaced by its logging order 0, 1, 2, ... (every point kept)."""
    return dataclasses.replace(s, step=np.arange(len(s), dtype=np.int64))


def step_starts(steps: npt.NDArray[np.int64], max_ticks: int = 12) -> tuple[list[int], list[str]]:
    """Axis ticks for a series drawn in logging order: the position where each logged step
    begins, labelled with that step (thinned to at most ``max_ticks``)."""
    if steps.size == 0:
        return [], []
    starts = np.flatnonzero(np.r_[True, np.diff(steps) != 0])
    keep = starts[:: max(1, -(-starts.size // max_ticks))]
    return [int(i) for i in keep], [str(int(steps[i])) for i in keep]


def band_over_steps(series: Sequence[Series], max_points: int = MAX_POINTS) -> Band:
    """Statistics over ranks at each step (or step bin when there are many steps)."""
    usable = [s for s in series if len(s)]
    if not usable:
        empty = np.empty(0)
        return Band(empty, empty, empty, empty, empty, empty, 0)
    steps = np.unique(np.concatenate([s.step for s in usable]))
    if steps.size <= max_points:
        x = steps.astype(np.float64)
        matrix = np.full((len(usable), steps.size), np.nan)
        for row, s in enumerate(usable):
            matrix[row, np.searchsorted(steps, s.step)] = _finite(s.value)
        return _reduce(x, matrix, len(usable))
    edges = np.linspace(float(steps[0]), float(steps[-1]), max_points + 1)
    x = (edges[:-1] + edges[1:]) / 2.0
    matrix = np.full((len(usable), max_points), np.nan)
    for row, s in enumerate(usable):
        values = _finite(s.value)
        keep = ~np.isnan(values)
        idx = np.clip(np.searchsorted(edges, s.step[keep], side="right") - 1, 0, max_points - 1)
        sums = np.bincount(idx, weights=values[keep], minlength=max_points)
        counts = np.bincount(idx, minlength=max_points)
        with np.errstate(invalid="ignore", divide="ignore"):
            matrix[row] = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return _reduce(x, matrix, len(usable))


def band_over_time(series: Sequence[Series], t0_ns: int, points: int = MAX_POINTS // 2) -> Band:
    """Statistics over series on a shared time grid (seconds since ``t0_ns``).

    Each series is interpolated inside its own time range only: a rank that started late
    or died early leaves the band instead of dragging it to its edge values.
    """
    usable = []
    for s in series:
        values = _finite(s.value)
        keep = ~np.isnan(values)
        if keep.sum() >= 1:
            usable.append(((s.time_ns[keep] - t0_ns) / 1e9, values[keep]))
    if not usable:
        empty = np.empty(0)
        return Band(empty, empty, empty, empty, empty, empty, 0)
    start = min(float(t[0]) for t, _ in usable)
    end = max(float(t[-1]) for t, _ in usable)
    grid = np.linspace(start, end, points) if end > start else np.array([start])
    matrix = np.full((len(usable), grid.size), np.nan)
    for row, (t_raw, v_raw) in enumerate(usable):
        order = np.argsort(t_raw, kind="stable")
        t, v = t_raw[order], v_raw[order]
        inside = (grid >= t[0]) & (grid <= t[-1])
        matrix[row, inside] = np.interp(grid[inside], t, v)
    return _reduce(grid, matrix, len(usable))


def cumulative_sum_over_time(
    series: Sequence[Series], t0_ns: int, points: int = 400
) -> tuple[FloatArray, FloatArray]:
    """Sum of cumulative counters (energy, emissions) of several ranks/GPUs on one time grid.

    Before a counter's first reading it counts as 0 (counters start at 0 at run start); after
    its last reading it holds its last value (a finished rank consumes no more).
    """
    usable = [((s.time_ns - t0_ns) / 1e9, _finite(s.value)) for s in series if len(s)]
    usable = [(t[~np.isnan(v)], v[~np.isnan(v)]) for t, v in usable]
    usable = [(t, v) for t, v in usable if t.size]
    if not usable:
        return np.empty(0), np.empty(0)
    start = min(float(t[0]) for t, _ in usable)
    end = max(float(t[-1]) for t, _ in usable)
    grid = np.linspace(start, end, points) if end > start else np.array([start])
    total = np.zeros(grid.size)
    for t, v in usable:
        order = np.argsort(t, kind="stable")
        total += np.interp(grid, t[order], v[order], left=0.0)
    return grid, total


def log2_ratio_to_median(rows: Sequence[Sequence[float]]) -> FloatArray:
    """Each row's values as log2(value / the row's median over its positive finite values);
    NaN where a value is missing, not finite or not positive (a ratio means nothing there)."""
    matrix = np.array([np.asarray(values, dtype=np.float64) for values in rows], ndmin=2)
    ratio = np.full(matrix.shape, np.nan)
    for i, values in enumerate(matrix):
        ok = np.isfinite(values) & (values > 0)
        if ok.any():
            ratio[i, ok] = np.log2(values[ok] / float(np.median(values[ok])))
    return ratio


def rate_of(t: FloatArray, cumulative: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Per-second rate of a cumulative curve, at interval midpoints (empty if too short)."""
    if t.size < 2:
        return np.empty(0), np.empty(0)
    dt = np.diff(t)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(dt > 0, np.diff(cumulative) / np.where(dt > 0, dt, 1.0), np.nan)
    return (t[:-1] + t[1:]) / 2.0, rate


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_filename(*parts: str, limit: int = 80) -> str:
    """A file name from metric/context names, which may hold '/', spaces, any Unicode."""
    text = "__".join(_UNSAFE.sub("_", p).strip("_.") or "x" for p in parts)
    return text[:limit]
