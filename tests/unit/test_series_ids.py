"""Series ids are unique whichever threads create series at the same time.

A rank's journal names each ring's points by a series id; two rings with one id would file
one series' points under the other's name.  The sampler thread creates its series (energy,
GPU, system) while the training thread creates its own: this happened in CI (the first
energy reading filed under another series, so ``gpu0/energy_j`` went missing).
"""

from __future__ import annotations

import sys
import threading
import warnings
from pathlib import Path

import yprov4ml_hpc as prov4ml

QUIET = {"flush_interval_s": 0, "system_metrics_interval_s": 0, "install_signal_handlers": False}
THREADS, SERIES = 4, 300


def test_series_created_by_several_threads_at_once_keep_their_own_points(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = prov4ml.start_run("ids", provenance_save_dir=tmp_path, **QUIET)
    start = threading.Barrier(THREADS + 1)

    def sampler_like(k: int) -> None:  # the samplers' write path: record_sample, no lock
        start.wait()
        for s in range(SERIES):
            run.record_sample(f"t{k}/s{s}", float(k * 1000 + s), "system", None, 1)

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: races show up at once
    try:
        pool = [threading.Thread(target=sampler_like, args=(k,)) for k in range(THREADS)]
        for thread in pool:
            thread.start()
        start.wait()
        for s in range(SERIES):  # the training thread creates series meanwhile
            run.log_metric(f"main/s{s}", float(-s), step=0)
        for thread in pool:
            thread.join()
    finally:
        sys.setswitchinterval(switch)
    ids = [ring.series_id for ring in run._rings]
    assert len(ids) == len(set(ids)), "two rings share a series id"
    run_dir = run.run_dir
    prov4ml.end_run()
    data = prov4ml.load_run(run_dir)
    for k in range(THREADS):
        for s in range(SERIES):
            assert data.series(f"t{k}/s{s}", "system", 0).value.tolist() == [float(k * 1000 + s)]
    for s in range(SERIES):
        assert data.series(f"main/s{s}").value.tolist() == [float(-s)]
