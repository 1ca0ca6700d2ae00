"""Fixed-size NumPy ring buffers, one per (metric, context) series.

The training thread is the only producer of a series and only ever advances ``head``;
a flusher (the training thread itself when the ring is full, or the background flush
timer) is the only consumer and only ever advances ``tail``.  Under the GIL each int
assignment is atomic and the data is written before ``head`` moves, so the hot path
needs no lock: a consumer copies ``[tail, head)`` and then publishes the new ``tail``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # numpy.typing costs ~20 ms to import; annotations only need it here
    import numpy.typing as npt

__all__ = ["MetricBuffer"]


class MetricBuffer:
    """One series' preallocated ring: ``step`` int64, ``value`` float64, ``time_ns`` int64."""

    __slots__ = (
        "capacity",
        "context",
        "head",
        "name",
        "next_step",
        "step",
        "step_view",
        "tail",
        "time_ns",
        "time_view",
        "value",
        "value_view",
    )

    def __init__(self, name: str, context: str, capacity: int) -> None:
        self.name = name
        self.context = context
        self.capacity = capacity
        self.step = np.zeros(capacity, dtype=np.int64)
        self.value = np.zeros(capacity, dtype=np.float64)
        self.time_ns = np.zeros(capacity, dtype=np.int64)
        # memoryview item assignment is cheaper than ndarray.__setitem__ and writes the same memory.
        self.step_view: Any = self.step.data
        self.value_view: Any = self.value.data
        self.time_view: Any = self.time_ns.data
        self.head = 0  # total points ever written (producer)
        self.tail = 0  # total points ever handed to storage (consumer)
        self.next_step = 0  # auto-increment for step=None

    def pending(self) -> int:
        """Number of points written but not yet drained."""
        return self.head - self.tail

    def drain(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        """Copy out every pending point in logging order and mark it consumed.

        Only one consumer may call this at a time (the store's lock ensures it).
        """
        head = self.head  # snapshot: points written after this stay for the next drain
        tail = self.tail
        count = head - tail
        if count <= 0:
            empty_i = np.empty(0, dtype=np.int64)
            return empty_i, np.empty(0, dtype=np.float64), empty_i.copy()
        start = tail % self.capacity
        stop = start + count
        if stop <= self.capacity:
            index: slice | npt.NDArray[np.int64] = slice(start, stop)
        else:
            index = np.arange(start, stop, dtype=np.int64) % self.capacity
        steps = self.step[index].copy()
        values = self.value[index].copy()
        times = self.time_ns[index].copy()
        self.tail = head
        return steps, values, times

    def nbytes(self) -> int:
        """Memory held by this ring (fixed for its lifetime)."""
        return int(self.step.nbytes + self.value.nbytes + self.time_ns.nbytes)
