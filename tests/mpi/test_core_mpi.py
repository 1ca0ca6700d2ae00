"""Every rank's data is kept, separately and completely, in ONE run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

import yprov4ml_hpc as prov4ml

STEPS = 2500  # more than one ring of 1024 points, so full-ring flushes happen too


def _value(rank: int, step: int) -> float:
    return rank * 1000.0 + step * 0.25


def test_all_ranks_share_one_run_dir_and_keep_their_series(comm: Any, shared_tmp: Path) -> None:
    run = prov4ml.start_run("mpi_core", provenance_save_dir=shared_tmp, buffer_size=1024)
    assert run.world_size == comm.size
    assert run.rank == comm.rank
    for step in range(STEPS):
        prov4ml.log_metric("train/loss", _value(comm.rank, step), context=prov4ml.Context.TRAINING)
    prov4ml.log_param("rank_param", comm.rank)
    run_dir = prov4ml.end_run()

    all_dirs = comm.allgather(str(run_dir))
    assert len(set(all_dirs)) == 1, all_dirs
    assert len(list(shared_tmp.iterdir())) == 1  # no rank made a directory of its own
    comm.Barrier()

    data = prov4ml.load_run(run_dir)
    assert data.world_size == comm.size
    assert [r.rank for r in data.ranks] == list(range(comm.size))
    assert {r.status for r in data.ranks} == {"finished"}
    assert len({r.pid for r in data.ranks}) == comm.size
    expected = np.array([_value(comm.rank, s) for s in range(STEPS)])
    for rank in range(comm.size):
        series = data.series("train/loss", "training", rank)
        np.testing.assert_array_equal(series.step, np.arange(STEPS))
        np.testing.assert_array_equal(series.value, np.array([_value(rank, s) for s in range(STEPS)]))
        assert np.all(np.diff(series.time_ns) >= 0)
        assert data.params(rank)["rank_param"] == rank
    np.testing.assert_array_equal(data.series("train/loss", "training", comm.rank).value, expected)


def test_local_ranks_are_recorded(comm: Any, shared_tmp: Path) -> None:
    run = prov4ml.start_run("mpi_local", provenance_save_dir=shared_tmp)
    assert run.launch.launcher == "mpi"
    local = comm.allgather((run.launch.host, run.launch.local_rank))
    run_dir = prov4ml.end_run()
    comm.Barrier()
    data = prov4ml.load_run(run_dir)
    for info in data.ranks:
        assert (info.host, info.local_rank) == local[info.rank]
    # Local ranks on each host are 0..k-1.
    by_host: dict[str, list[int]] = {}
    for host, local_rank in local:
        by_host.setdefault(host, []).append(local_rank)
    for ranks in by_host.values():
        assert sorted(ranks) == list(range(len(ranks)))


def test_explicit_run_id_is_agreed_and_never_reused(comm: Any, shared_tmp: Path) -> None:
    run = prov4ml.start_run("mpi_explicit", provenance_save_dir=shared_tmp, run_id="fixed-1")
    assert run.run_dir.name == "mpi_explicit_fixed-1"
    prov4ml.end_run()
    comm.Barrier()
    # The same run id again: every rank gets the same clear error, and nothing is overwritten.
    try:
        prov4ml.start_run("mpi_explicit", provenance_save_dir=shared_tmp, run_id="fixed-1")
    except prov4ml.ConfigError as exc:
        assert "already exists" in str(exc)
    else:
        raise AssertionError("start_run reused an existing run directory")
    assert prov4ml.active_run() is None
