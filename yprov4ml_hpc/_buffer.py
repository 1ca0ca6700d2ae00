"""Fixed-size NumPy ring buffers, one per (metric, context) series, double buffered.

A ring holds ``capacity = 2 * half`` points (``half`` = buffer_size / 2): while the journal
writer copies one half out, the training thread fills the other.  One producer thread per
ring only ever advances ``head``; the journal writer thread is the only consumer and only
ever advances ``tail``.
Under the GIL each int assignment is atomic and the data is written before ``head`` moves,
so the hot path needs no lock: the writer copies ``[tail, head)`` and then publishes ``tail``.

The producer looks at the ring only when ``head`` reaches ``due``: it hands the full half to
the writer (a wake-up, no I/O) and moves ``due`` on by a half; it waits only if the writer is
a whole ring behind (``head - tail == capacity``).
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
        "due",
        "half",
        "head",
        "name",
        "next_step",
        "seal",
        "series_id",
        "step",
        "step_view",
        "tail",
        "time_ns",
        "time_view",
        "value",
        "value_view",
    )

    def __init__(
        self,
        name: str,
        context: str,
        half: int,
        series_id: int = 0,
        arrays: tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.int64]] | None = None,
    ) -> None:
        """``arrays``: the (step, value, time_ns) arrays of ``2 * half`` points to use (shared
        memory, see ``_shared_ring.py``); by default new ones in this process."""
        self.name = name
        self.context = context
        self.series_id = series_id  # the journal's id of this ring (several rings may share a name)
        self.half = half
        self.capacity = capacity = 2 * half
        if arrays is None:
            arrays = (np.zeros(capacity, dtype=np.int64), np.zeros(capacity, dtype=np.float64),
                      np.zeros(capacity, dtype=np.int64))
        self.step, self.value, self.time_ns = arrays
        # memoryview item assignment is cheaper than ndarray.__setitem__ and writes the same memory.
        self.step_view: Any = self.step.data
        self.value_view: Any = self.value.data
        self.time_view: Any = self.time_ns.data
        self.head = 0  # total points ever written (producer)
        self.tail = 0  # total points ever handed to storage (consumer)
        self.due = half  # head at which the producer hands a half to the writer
        self.next_step = 0  # auto-increment for step=None
        # (start, stop, frame buffers) of the batch the producer handed off last, checksummed by
        # the producer (see JournalWriter.hand_off); stale once ``tail`` has moved past start.
        self.seal: tuple[int, int, list[bytes | memoryview]] | None = None

    def pending(self) -> int:
        """Number of points written but not yet drained."""
        return self.head - self.tail

    def pending_slices(self) -> tuple[int, list[slice]]:
        """``(head, slices)``: the contiguous pieces of ``[tail, head)`` in logging order.

        The consumer reads the slices, then publishes ``tail = head``; points written after the
        ``head`` snapshot stay for the next drain.
        """
        head = self.head
        return head, self.slices(self.tail, head)

    def slices(self, first: int, end: int) -> list[slice]:
        """The contiguous pieces of the points ``[first, end)`` (totals, not ring positions)."""
        count = end - first
        if count <= 0:
            return []
        start = first % self.capacity
        stop = start + count
        if stop <= self.capacity:
            return [slice(start, stop)]
        return [slice(start, self.capacity), slice(0, stop - self.capacity)]

    def drain(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        """Copy out every pending point in logging order and mark it consumed (one consumer)."""
        head, pieces = self.pending_slices()
        if not pieces:
            empty_i = np.empty(0, dtype=np.int64)
            return empty_i, np.empty(0, dtype=np.float64), empty_i.copy()
        steps = np.concatenate([self.step[p] for p in pieces])
        values = np.concatenate([self.value[p] for p in pieces])
        times = np.concatenate([self.time_ns[p] for p in pieces])
        self.tail = head
        return steps, values, times

    def nbytes(self) -> int:
        """Memory held by this ring (fixed for its lifetime)."""
        return int(self.step.nbytes + self.value.nbytes + self.time_ns.nbytes)
