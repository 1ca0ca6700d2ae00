"""Forked children never touch their parent's run; several threads lose and duplicate nothing.

Documented behaviour (README, crash safety): a child forked after start_run (os.fork, a
multiprocessing pool with the fork start method, DataLoader workers) never writes, flushes,
closes or finalizes the parent's run; logging there raises RunStateError naming both pids.
log_metric from any number of threads keeps every point exactly once.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import yprov4ml_hpc as prov4ml

QUIET = {"flush_interval_s": 0, "system_metrics_interval_s": 0, "install_signal_handlers": True}
FORK = multiprocessing.get_context("fork")


def _start(tmp_path: Path, **options: object) -> prov4ml.Run:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return prov4ml.start_run("fork", provenance_save_dir=tmp_path, **{**QUIET, **options})


def _check_parent_file(run: prov4ml.Run, points: int) -> None:
    """The parent's run ended by the parent alone: one .h5, finished, every point exactly."""
    assert sorted(p.name for p in (run.run_dir / "ranks").iterdir()) == ["rank_000000.h5"]
    data = prov4ml.load_run(run.run_dir)
    assert data.problems == [] and [r.status for r in data.ranks] == ["finished"]
    assert [r.pid for r in data.ranks] == [os.getpid()]
    series = data.series("loss", "training", 0)
    np.testing.assert_array_equal(series.step, np.arange(points))
    ends = [e for e in data.events() if e["event"] == "end"]
    assert len(ends) == 1 and ends[0]["reason"] == "end_run", ends


def _log(start: int, stop: int) -> None:
    for step in range(start, stop):
        prov4ml.log_metric("loss", step * 0.5, context="training", step=step)


def _square(x: int) -> int:
    return x * x


def _log_in_child(_: int) -> str:
    try:
        prov4ml.log_metric("loss", 1.0, context="training", step=0)
    except prov4ml.RunStateError as exc:
        return str(exc)
    return "no error"


def _sleep_forever(_: int) -> None:
    time.sleep(60)


FORK_SCRIPT = """
import os, sys, warnings
warnings.simplefilter("ignore")
import yprov4ml_hpc as prov4ml
run = prov4ml.start_run("fork", provenance_save_dir=sys.argv[1], buffer_size=64, flush_interval_s=0,
                        system_metrics_interval_s=0)
for step in range(1000):  # some batches handed to the writer, some still in the rings
    prov4ml.log_metric("loss", step * 0.5, context="training", step=step)
read, write = os.pipe()
pid = os.fork()
if pid == 0:
    try:
        prov4ml.log_metric("loss", 1.0, context="training", step=0)
        message = "no error"
    except prov4ml.RunStateError as exc:
        message = str(exc)
    try:
        prov4ml.log_metric("new_series", 1.0)
        message += "|no error"
    except prov4ml.RunStateError:
        message += "|refused"
    os.write(write, message.encode())
    sys.exit(0)  # runs the child's atexit hooks: they must leave the parent's run alone
os.close(write)
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status), os.read(read, 65536).decode(), flush=True)
for step in range(1000, 2000):
    prov4ml.log_metric("loss", step * 0.5, context="training", step=step)
prov4ml.end_run()
print(run.run_dir)
"""


def test_fork_then_sys_exit_leaves_the_parent_run_alone(tmp_path: Path) -> None:
    """The child's atexit hooks run (sys.exit) but do not end, flush or fold the parent's run;
    logging in the child raises RunStateError naming the fork."""
    import subprocess

    proc = subprocess.run([sys.executable, "-c", FORK_SCRIPT, str(tmp_path)], capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    child, run_dir = proc.stdout.strip().splitlines()
    code, message = child.split(" ", 1)
    assert code == "0" and "forked" in message and message.endswith("|refused"), child
    data = prov4ml.load_run(run_dir)
    assert sorted(p.name for p in (Path(run_dir) / "ranks").iterdir()) == ["rank_000000.h5"]
    assert data.problems == [] and [r.status for r in data.ranks] == ["finished"]
    np.testing.assert_array_equal(data.series("loss", "training", 0).step, np.arange(2000))
    assert [e["reason"] for e in data.events() if e["event"] == "end"] == ["end_run"]


def test_pools_and_terminated_workers_leave_the_parent_run_alone(tmp_path: Path) -> None:
    """100 pools mapped then closed, a pool terminated (SIGTERM to its workers mid-task) and a
    Process terminated: the parent's file stays the parent's, complete and finished."""
    run = _start(tmp_path, buffer_size=128)
    step = 0
    for _ in range(100):
        _log(step, step + 50)
        step += 50
        with FORK.Pool(2) as pool:
            assert pool.map(_square, range(4)) == [0, 1, 4, 9]
    with FORK.Pool(2) as pool:
        messages = pool.map(_log_in_child, range(2))
    assert all("forked" in m for m in messages), messages
    pool = FORK.Pool(2)
    pool.map_async(_sleep_forever, range(2))
    time.sleep(0.3)
    pool.terminate()  # SIGTERM to the workers: our inherited handler must not end the parent's run
    pool.join()
    process = FORK.Process(target=_sleep_forever, args=(0,))
    process.start()
    time.sleep(0.2)
    process.terminate()
    process.join(timeout=10)
    assert process.exitcode == -signal.SIGTERM
    assert prov4ml.active_run() is run and not run.ended
    _log(step, step + 50)
    prov4ml.end_run()
    _check_parent_file(run, step + 50)
    assert not FORK.active_children()


def test_dataloader_workers_leave_the_parent_run_alone(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader, TensorDataset

    run = _start(tmp_path, buffer_size=32)
    loader = DataLoader(TensorDataset(torch.arange(64.0)), batch_size=8, num_workers=2,
                        multiprocessing_context="fork")
    step = 0
    for _ in range(3):
        for (batch,) in loader:
            prov4ml.log_metric("loss", float(batch.sum()), context="training", step=step)
            step += 1
    prov4ml.end_run()
    _check_parent_file(run, step)


@pytest.mark.parametrize("threads", [2, 4])
def test_threads_into_one_series_keep_every_point(tmp_path: Path, threads: int) -> None:
    """N threads x M points into one series (and the main thread too): exactly N*M + M points,
    each thread's points in its own order, nothing duplicated."""
    run = _start(tmp_path, buffer_size=256)
    per_thread = 20_000
    barrier = threading.Barrier(threads + 1)

    def worker(k: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            prov4ml.log_metric("loss", float(k), context="training", step=k * per_thread + i)

    pool = [threading.Thread(target=worker, args=(k + 1,)) for k in range(threads)]
    for thread in pool:
        thread.start()
    barrier.wait()
    for i in range(per_thread):  # the owner thread logs at the same time, lock-free
        prov4ml.log_metric("loss", 0.0, context="training", step=i)
    for thread in pool:
        thread.join()
    prov4ml.end_run()
    series = prov4ml.load_run(run.run_dir).series("loss", "training", 0)
    assert len(series) == (threads + 1) * per_thread
    np.testing.assert_array_equal(np.sort(series.step), np.arange((threads + 1) * per_thread))
    for k in range(threads + 1):
        mine = series.step[series.value == k]
        np.testing.assert_array_equal(mine, k * per_thread + np.arange(per_thread))  # in order


def test_threads_into_separate_series_and_end_run_racing_them(tmp_path: Path) -> None:
    """Each thread its own series: exact counts.  Then end_run while threads still log: it
    ends the run, the threads get RunStateError (never a crash or a damaged file)."""
    run = _start(tmp_path, buffer_size=64)
    per_thread, errors = 10_000, []
    stop = threading.Event()
    counted = threading.Semaphore(0)  # one release per thread that has logged all its points

    def worker(k: int) -> None:
        for i in range(per_thread):
            prov4ml.log_metric(f"m{k}", float(i), step=i)
        counted.release()
        while not stop.is_set():  # keep logging into the end
            try:
                prov4ml.log_metric(f"late{k}", 1.0)
            except prov4ml.RunStateError as exc:
                errors.append(exc)
                return

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(3)]
    for thread in pool:
        thread.start()
    # end_run must land while every thread is in its late loop (a fixed sleep was not always
    # long enough on a loaded machine: a thread still in its counted loop got the error there).
    for _ in pool:
        assert counted.acquire(timeout=120), "a logging thread did not finish its points"
    time.sleep(0.05)
    prov4ml.end_run()
    stop.set()
    for thread in pool:
        thread.join()
    assert len(errors) == 3, errors
    data = prov4ml.load_run(run.run_dir)
    assert data.problems == [] and [r.status for r in data.ranks] == ["finished"]
    for k in range(3):
        np.testing.assert_array_equal(data.series(f"m{k}").step, np.arange(per_thread))
