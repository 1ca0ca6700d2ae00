from __future__ import annotations

import numpy as np

from yprov4ml_hpc._buffer import MetricBuffer


def _fill(buf: MetricBuffer, start: int, count: int) -> None:
    for k in range(start, start + count):
        i = buf.head % buf.capacity
        buf.value_view[i] = k * 1.5
        buf.step_view[i] = k
        buf.time_view[i] = 1000 + k
        buf.head += 1


def test_drain_returns_points_in_order_and_consumes_them() -> None:
    buf = MetricBuffer("loss", "training", 8)
    _fill(buf, 0, 5)
    steps, values, times = buf.drain()
    np.testing.assert_array_equal(steps, np.arange(5))
    np.testing.assert_array_equal(values, np.arange(5) * 1.5)
    np.testing.assert_array_equal(times, 1000 + np.arange(5))
    assert buf.pending() == 0
    assert buf.drain()[0].size == 0


def test_drain_across_the_wrap_point() -> None:
    buf = MetricBuffer("loss", "training", 4)  # two halves of 4: capacity 8
    _fill(buf, 0, 6)
    buf.drain()
    _fill(buf, 6, 7)  # positions 6,7,0,1,2,3,4
    steps, values, _ = buf.drain()
    np.testing.assert_array_equal(steps, np.arange(6, 13))
    np.testing.assert_array_equal(values, np.arange(6, 13) * 1.5)


def test_drain_returns_copies_not_views() -> None:
    buf = MetricBuffer("x", "c", 4)
    _fill(buf, 0, 2)
    steps, _, _ = buf.drain()
    _fill(buf, 2, 2)
    np.testing.assert_array_equal(steps, [0, 1])


def test_memory_is_fixed_by_capacity() -> None:
    buf = MetricBuffer("x", "c", 4096)
    before = buf.nbytes()
    for _ in range(10):
        _fill(buf, 0, 4096)
        buf.drain()
    assert buf.nbytes() == before == 2 * 4096 * 24  # two halves of 4096: one fills, one is written
