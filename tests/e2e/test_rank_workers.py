"""A worker process started by an MPI rank (multiprocessing or dask, as upstream's HPC example)
that calls start_run without rank= records as a run of its own: before, it took its parent's
launcher variables at face value and called MPI_Init (spawn: the worker aborted; fork: it
corrupted the rank's PMI connection and the job hung)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import yprov4ml_hpc as prov

SCRIPT = Path(__file__).with_name("scripts") / "rank_with_workers.py"
REPO = Path(__file__).resolve().parents[2]
_BIN = Path(sysconfig.get_path("scripts"))
MPIEXEC = str(_BIN / "mpiexec") if (_BIN / "mpiexec").exists() else shutil.which("mpiexec")
pytestmark = pytest.mark.skipif(MPIEXEC is None, reason="needs mpiexec (pip install mpich)")


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_workers_of_ranks_record_runs_of_their_own(tmp_path: Path, method: str) -> None:
    assert MPIEXEC is not None
    env = {**os.environ, "PYTHONPATH": str(REPO), "YPROV4ML_HPC_CARBON": "0"}
    proc = subprocess.Popen(
        [MPIEXEC, "-n", "2", sys.executable, str(SCRIPT), str(tmp_path), method],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"the job hung:\n{out}\n{err[-3000:]}")
    assert proc.returncode == 0, f"{out}\n{err[-3000:]}"
    job = [d for d in tmp_path.iterdir() if d.name.startswith("job")]
    workers = sorted(d for d in tmp_path.iterdir() if d.name.startswith("worker"))
    assert len(job) == 1 and len(workers) == 2, sorted(p.name for p in tmp_path.iterdir())
    run = prov.load_run(job[0])
    assert [r.rank for r in run.ranks] == [0, 1] and {r.status for r in run.ranks} == {"finished"}
    tags = sorted(prov.load_run(w).series("tag", "training", 0).value[0] for w in workers)
    assert tags == [0.0, 1.0]
