"""The hand-off seal: a full half is checksummed by its producer, the writer writes it once.

A hand-off must not give the GIL away (see ``_writer.py``), so the producer checksums in pieces
that ``zlib.crc32`` handles without releasing it; the frame must be the same bytes either way.
"""

from __future__ import annotations

import threading
import warnings
from pathlib import Path

import numpy as np
import pytest

import yprov4ml_hpc as prov4ml
from yprov4ml_hpc._journal import iter_frames, points_frame_parts

QUIET = {"flush_interval_s": 0, "system_metrics_interval_s": 0, "install_signal_handlers": False,
         "writer": "thread"}  # the writer thread's queue is what these tests look at


@pytest.mark.parametrize("points", [1, 170, 171, 512, 513, 4096, 5000])
def test_a_frame_checksummed_in_small_pieces_is_the_same_frame(points: int) -> None:
    rng = np.random.default_rng(points)
    step = np.arange(points, dtype=np.int64)
    value = rng.standard_normal(points)
    time_ns = rng.integers(0, 2**62, points, dtype=np.int64)
    cut = points // 3  # a ring that wraps around its end gives each column in two pieces
    pieces = [[a[:cut], a[cut:]] for a in (step, value, time_ns)]
    whole = b"".join(points_frame_parts(7, step, value, time_ns))
    small = b"".join(points_frame_parts(7, *pieces, keep_gil=True))
    assert small == whole
    frames = list(iter_frames(whole))  # the reader takes it: the checksum is right, not just equal
    assert len(frames) == 1 and frames[0][2] == len(whole)


def test_a_ring_handed_off_twice_before_a_cycle_is_written_once(tmp_path: Path) -> None:
    """The writer is held between cycles while the producer fills its ring twice over: the ring
    is queued twice (its half, then the wait for room), and its points are written once."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = prov4ml.start_run("seal", provenance_save_dir=tmp_path, buffer_size=64, **QUIET)
    writer = run._writer
    writer.before_fork()  # holds the writer's cycle lock: no cycle can start
    queued: list[int] = []

    def release_later() -> None:
        queued.append(len(writer._due))
        writer.after_fork_in_parent()

    timer = threading.Timer(1.0, release_later)
    timer.start()
    try:
        for i in range(100):  # the 64th point finds the ring full and waits for the writer
            run.log_metric("loss", float(i), step=i)
    finally:
        timer.join()
    assert queued == [2], f"the scenario did not happen: the writer's queue held {queued}"
    run_dir = run.run_dir
    prov4ml.end_run()
    series = prov4ml.load_run(run_dir).series("loss")
    np.testing.assert_array_equal(series.step, np.arange(100))
    np.testing.assert_array_equal(series.value, np.arange(100, dtype=np.float64))
