"""Jobs started at the same moment into the same experiment directory.

Processes wait at a multiprocessing barrier (or two mpiexec jobs at a file gate) and then call
start_run with the same experiment and save directory.

What may be lost: nothing.  Every job gets its own run directory; no file is shared (each
run directory holds exactly the rank files of its own job, written by its own processes).  Two
jobs that insist on the same explicit run_id: one wins, the others get a clear ConfigError
and write nothing into the winner's directory.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
import warnings
from pathlib import Path
from typing import Any

import h5py
import pytest
from faults_harness import Job

import yprov4ml_hpc as prov4ml

PROCESSES = 6


def _start_at_barrier(barrier: Any, save_dir: str, run_id: str | None, out: Any) -> None:
    """Child: wait for the others, start a run, log a point, end it; report what happened."""
    warnings.simplefilter("ignore")
    os.environ["YPROV4ML_HPC_CARBON"] = "0"
    barrier.wait(timeout=60)
    try:
        prov4ml.start_run(
            "race", provenance_save_dir=save_dir, run_id=run_id, flush_interval_s=0,
            system_metrics_interval_s=0, install_signal_handlers=False,
        )
    except prov4ml.Yprov4mlError as exc:
        out.put({"pid": os.getpid(), "error": type(exc).__name__, "message": str(exc)})
        return
    prov4ml.log_metric("pid", float(os.getpid()))
    prov4ml.log_param("pid", os.getpid())
    run_dir = prov4ml.end_run()
    out.put({"pid": os.getpid(), "run_dir": str(run_dir)})


def _race(save_dir: Path, run_id: str | None = None) -> list[dict[str, Any]]:
    # fork: the children start in milliseconds (spawn re-imports everything: ~1.5 s each on 2 cores).
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(PROCESSES)
    out = ctx.Queue()
    procs = [ctx.Process(target=_start_at_barrier, args=(barrier, str(save_dir), run_id, out))
             for _ in range(PROCESSES)]
    for proc in procs:
        proc.start()
    results = [out.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
        if proc.is_alive():
            proc.kill()
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
    return results


def _assert_private(results: list[dict[str, Any]], save_dir: Path) -> None:
    """Each winner has its own directory holding only its own rank file."""
    winners = [r for r in results if "run_dir" in r]
    dirs = [Path(r["run_dir"]) for r in winners]
    assert len(set(dirs)) == len(dirs), dirs
    assert sorted(p.name for p in save_dir.iterdir()) == sorted(d.name for d in dirs)
    for result in winners:
        run_dir = Path(result["run_dir"])
        files = sorted((run_dir / "ranks").iterdir())
        assert [f.name for f in files] == ["rank_000000.h5"], files
        with h5py.File(files[0], "r", locking=False) as handle:
            assert int(handle.attrs["pid"]) == result["pid"]
        data = prov4ml.load_run(run_dir)
        assert data.params(0)["pid"] == result["pid"]
        assert data.series("pid", None, 0).value.tolist() == [float(result["pid"])]


@pytest.mark.parametrize("round_", range(2))
def test_simultaneous_fresh_runs_get_distinct_dirs(tmp_path: Path, round_: int) -> None:
    """Six processes released by one barrier: six run directories, none shared."""
    results = _race(tmp_path)
    assert all("run_dir" in r for r in results), results
    _assert_private(results, tmp_path)


def test_simultaneous_runs_colliding_on_the_same_fresh_id(tmp_path: Path) -> None:
    """All six try upstream's first name race_0 at once: each ends up with its own race_<N>."""
    results = _race(tmp_path)
    assert all("run_dir" in r for r in results), results
    names = sorted(Path(r["run_dir"]).name for r in results)
    assert names == sorted(f"race_{n}" for n in range(PROCESSES)), names
    _assert_private(results, tmp_path)


def test_simultaneous_runs_with_the_same_explicit_id(tmp_path: Path) -> None:
    """Six processes insist on run_id='same': one wins; the others get ConfigError and write nothing."""
    results = _race(tmp_path, run_id="same")
    winners = [r for r in results if "run_dir" in r]
    losers = [r for r in results if "error" in r]
    assert len(winners) == 1 and len(losers) == PROCESSES - 1, results
    assert all(r["error"] == "ConfigError" and "already exists" in r["message"] for r in losers), losers
    _assert_private(results, tmp_path)


def test_two_mpiexec_jobs_at_the_same_moment(tmp_path: Path) -> None:
    """Two 2-rank mpiexec jobs released by one file gate: two run directories, each holding its
    own job's ranks 0 and 1 (pids of that job's processes)."""
    gate = tmp_path / "go"
    jobs = [Job(tmp_path, "a"), Job(tmp_path, "b")]
    try:
        for job in jobs:
            job.save = tmp_path / "shared_save"
            job.save.mkdir(exist_ok=True)
            job.mpiexec(2, "job_worker.py", str(job.save), str(job.ctl), "finish", "--flushed", "50",
                        "--gate", str(gate))
        time.sleep(1.0)  # both jobs' ranks are up and polling the gate
        gate.touch()
        pids = {job.ctl: set(job.pids(2).values()) for job in jobs}
        for job in jobs:
            job.wait_files("done", 2)
            assert job.wait() == [0], job.logs_text()
        run_dirs = [job.run_dir for job in jobs]
    finally:
        for job in jobs:
            job.kill_all()
    assert run_dirs[0] != run_dirs[1]
    assert sorted(p.name for p in (tmp_path / "shared_save").iterdir()) == sorted(d.name for d in run_dirs)
    for job, run_dir in zip(jobs, run_dirs, strict=True):
        data = prov4ml.load_run(run_dir)
        assert [r.rank for r in data.ranks] == [0, 1]
        assert {r.pid for r in data.ranks} == pids[job.ctl]
        assert {r.status for r in data.ranks} == {"finished"}
