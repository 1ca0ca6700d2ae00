"""Checks shared by the fault cases: what a rank file must hold after a given fault."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np

from yprov4ml_hpc import RunData


@contextlib.contextmanager
def known_kill_inside_flush(note: str) -> Iterator[None]:
    """Where a random kill lands: kept as the place to name the seed in ``note``.  There is no
    known bug left to excuse (BUG F23, a kill inside an HDF5 flush, is fixed by the journal):
    every exception fails the case."""
    try:
        yield
    except Exception as exc:
        raise AssertionError(f"{note}: {type(exc).__name__}: {exc}") from exc


def check_problems(data: RunData, note: str) -> None:
    """No rank file may be unreadable."""
    assert data.problems == [], f"{note}: {data.problems}"


SERIES = (("loss", "training"), ("acc", "validation"))


def expected(metric: str, rank: int, count: int) -> np.ndarray:
    steps = np.arange(count, dtype=np.float64)
    if metric == "loss":
        return rank * 1e6 + steps * 0.5
    return -(rank * 1e6 + steps)


def series_lengths(data: RunData, rank: int) -> dict[str, int]:
    """Points per series of ``rank``, after checking every point is exactly what was logged."""
    lengths = {}
    keys = set(data.series_keys())
    for metric, context in SERIES:
        if (metric, context, rank) not in keys:
            lengths[metric] = 0
            continue
        series = data.series(metric, context, rank)
        count = len(series)
        np.testing.assert_array_equal(series.step, np.arange(count), err_msg=f"rank {rank} {metric} steps")
        np.testing.assert_array_equal(
            series.value, expected(metric, rank, count), err_msg=f"rank {rank} {metric} values"
        )
        assert np.all(np.diff(series.time_ns) >= 0), f"rank {rank} {metric}: time goes back"
        lengths[metric] = count
    return lengths


def assert_flushed_prefix(data: RunData, rank: int, reported: int, batch: int, note: str) -> dict[str, int]:
    """A SIGKILLed rank keeps exactly whole batches: at least what it reported flushed, at most
    one batch more (a flush that completed just before the kill, not yet reported)."""
    lengths = series_lengths(data, rank)
    for metric, count in lengths.items():
        assert reported <= count <= reported + batch, (
            f"{note}: rank {rank} {metric}: {count} points read back, "
            f"{reported} reported flushed (batch {batch})"
        )
        assert count % batch == 0, f"{note}: rank {rank} {metric}: {count} is not whole batches of {batch}"
    return lengths
