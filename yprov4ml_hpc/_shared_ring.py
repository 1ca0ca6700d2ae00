"""Rings in shared memory, for the journal writer process (``_writer_process.py``).

A ring of the writer process is a ``memfd`` (anonymous shared memory) that the rank maps and
hands, by file descriptor, to its writer process, which maps it too.  Layout, native byte
order::

    (reserved) int64
    consumed  int64   points the writer has written (their slots are free again)
    (48 bytes padding: the counter and the data do not share a cache line)
    step      int64[capacity]
    value     float64[capacity]
    time_ns   int64[capacity]

The rank is the only writer of the data, the writer process the only writer of ``consumed``.
How far a ring is filled travels in the rank's messages, never through this memory: the rank
stores the points, then sends their count, and the writer reads the points only after receiving
it, so the socket's send and receive order the stores on weakly ordered CPUs too (aarch64).
``consumed`` is read by the rank without a message: a stale value is smaller, which only means
less room, never an overwritten point.
"""

from __future__ import annotations

import mmap
import os
from typing import Any

import numpy as np

from ._buffer import MetricBuffer

__all__ = ["RingMemory", "SharedRing", "SharedRingView", "allocate_ring_memory", "ring_bytes", "ring_views"]

_CONTROL_BYTES = 64
_POINT_BYTES = 24


def ring_bytes(capacity: int) -> int:
    return _CONTROL_BYTES + _POINT_BYTES * capacity


def allocate_ring_memory(capacity: int) -> tuple[int, mmap.mmap]:
    """A new zeroed memfd for a ring of ``capacity`` points, and its mapping here."""
    size = _CONTROL_BYTES + _POINT_BYTES * capacity
    fd = os.memfd_create("yprov4ml-hpc-ring", os.MFD_CLOEXEC)
    try:
        os.ftruncate(fd, size)
        memory = mmap.mmap(fd, size)
    except BaseException:
        os.close(fd)
        raise
    return fd, memory


RingMemory = tuple[Any, np.ndarray, np.ndarray, np.ndarray]  # (control, step, value, time_ns)


def ring_views(memory: mmap.mmap, capacity: int) -> RingMemory:
    """The control counters (a memoryview) and the three columns of a ring's memory."""
    return _views(memory, capacity)


def _views(memory: mmap.mmap, capacity: int) -> RingMemory:
    control = np.frombuffer(memory, dtype=np.int64, count=2).data  # memoryview: int item access
    step = np.frombuffer(memory, dtype=np.int64, count=capacity, offset=_CONTROL_BYTES)
    value = np.frombuffer(memory, dtype=np.float64, count=capacity, offset=_CONTROL_BYTES + 8 * capacity)
    time_ns = np.frombuffer(memory, dtype=np.int64, count=capacity, offset=_CONTROL_BYTES + 16 * capacity)
    return control, step, value, time_ns


class SharedRing(MetricBuffer):
    """The rank's side: a MetricBuffer whose arrays are the shared memory and whose ``tail`` is
    the writer's ``consumed``."""

    __slots__ = ("_control", "memory")

    def __init__(
        self,
        name: str,
        context: str,
        half: int,
        series_id: int,
        memory: mmap.mmap,
        views: RingMemory | None = None,
    ) -> None:
        self.memory = memory
        self._control, step, value, time_ns = views if views is not None else _views(memory, 2 * half)
        super().__init__(name, context, half, series_id=series_id, arrays=(step, value, time_ns))

    @property
    def tail(self) -> int:
        return int(self._control[1])

    @tail.setter
    def tail(self, value: int) -> None:  # the thread writer that took over from the process
        self._control[1] = value


class SharedRingView(MetricBuffer):
    """The writer process's side: ``head`` is the largest count the rank has sent, ``tail`` what
    this process has written (published: the rank's slots are free again)."""

    __slots__ = ("_control", "handed", "memory", "seen")

    def __init__(self, name: str, context: str, half: int, series_id: int, memory: int | mmap.mmap) -> None:
        """``memory``: the ring's memfd, or its mapping (made before, for the pool)."""
        capacity = 2 * half
        if isinstance(memory, int):
            memory = mmap.mmap(memory, _CONTROL_BYTES + _POINT_BYTES * capacity)
        self.memory = memory
        self._control, step, value, time_ns = _views(self.memory, capacity)
        self.handed = 0  # the largest count received (counts may arrive out of order: threads)
        self.seen = 0  # ``handed`` at the last hand-off taken from it
        super().__init__(name, context, half, series_id=series_id, arrays=(step, value, time_ns))

    @property
    def head(self) -> int:
        return self.handed

    @head.setter
    def head(self, value: int) -> None:  # MetricBuffer.__init__ sets it; the rank owns it
        pass

    @property
    def tail(self) -> int:
        return int(self._control[1])

    @tail.setter
    def tail(self, value: int) -> None:
        self._control[1] = value
