"""A few numbers of one series (count, NaN count, min/max/sum, last values, time span): what a
merge needs of a rank's series without its points.

Computed in one place, :meth:`SeriesStats.of`, by the writer (``_fold.write_layout`` stores them
in the rank file's metadata record, ``_meta_record.py``) and by the reader for files without
that record, so both give the same numbers bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # numpy.typing costs ~20 ms to import; annotations only need it here
    import numpy.typing as npt

__all__ = ["SeriesStats"]


@dataclass(frozen=True)
class SeriesStats:
    """A few numbers of one rank's series: the part of a series that travels to rank 0.

    NaN points are skipped (``nan_count`` says how many); +-inf take part.
    """

    count: int
    nan_count: int = 0
    valid: int = 0
    min: float | None = None
    max: float | None = None
    sum: float = 0.0
    last: float | None = None
    last_finite: float | None = None
    first_time_ns: int | None = None
    last_time_ns: int | None = None
    median_interval_s: float | None = None

    @classmethod
    def of(
        cls, step: npt.NDArray[np.int64], value: npt.NDArray[np.float64], time_ns: npt.NDArray[np.int64]
    ) -> SeriesStats:
        count = int(value.shape[0])
        if count == 0:
            return cls(0)
        nan = np.isnan(value)
        valid = value[~nan]
        low = high = None
        total = 0.0
        if valid.shape[0]:
            low, high = float(valid.min()), float(valid.max())
            with np.errstate(over="ignore", invalid="ignore"):  # inf + -inf is NaN: mean is null
                total = float(valid.sum())
        finite = np.flatnonzero(np.isfinite(value))
        interval = None
        if count >= 2:
            # Time per step, so that logging every 10th step does not look 10x slower.
            dstep = np.diff(step)
            forward = dstep > 0
            if forward.any():
                per_step = np.diff(time_ns)[forward] / dstep[forward]
                interval = float(np.median(per_step)) / 1e9
        return cls(
            count=count,
            nan_count=int(nan.sum()),
            valid=int(valid.shape[0]),
            min=low,
            max=high,
            sum=total,
            last=float(value[-1]),
            last_finite=float(value[finite[-1]]) if finite.shape[0] else None,
            first_time_ns=int(time_ns[0]),
            last_time_ns=int(time_ns[-1]),
            median_interval_s=interval,
        )

    @property
    def mean(self) -> float | None:
        return self.sum / self.valid if self.valid else None
