"""A worker process started by an MPI rank (multiprocessing or dask, as upstream's HPC example)
that calls start_run without rank= records as a run of its own: before, it took its parent's
launcher variables at face value and called MPI_Init (spawn: the worker aborted; fork: it
corrupted the rank's PMI connection and the job hung)."""

from __future__ import annotations

from pathlib import Path

import pytest
from _mpiexec import needs_mpiexec, run_mpiexec

import yprov4ml_hpc as prov

SCRIPT = Path(__file__).with_name("scripts") / "rank_with_workers.py"
pytestmark = needs_mpiexec


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_workers_of_ranks_record_runs_of_their_own(tmp_path: Path, method: str) -> None:
    code, out, err = run_mpiexec(2, SCRIPT, str(tmp_path), method, timeout=240)
    assert code == 0, f"{out}\n{err[-3000:]}"
    job = [d for d in tmp_path.iterdir() if d.name.startswith("job")]
    workers = sorted(d for d in tmp_path.iterdir() if d.name.startswith("worker"))
    assert len(job) == 1 and len(workers) == 2, sorted(p.name for p in tmp_path.iterdir())
    run = prov.load_run(job[0])
    assert [r.rank for r in run.ranks] == [0, 1] and {r.status for r in run.ranks} == {"finished"}
    tags = sorted(prov.load_run(w).series("tag", "training", 0).value[0] for w in workers)
    assert tags == [0.0, 1.0]
