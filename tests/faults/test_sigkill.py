"""SIGKILL of one rank, or of every rank, at a random point of a real ``mpiexec`` job.

What may be lost: on each rank, the points logged since that rank's last flush (the subject
flushes whole batches of 500 and reports each flush in a control file; the kill time, the
victim and the ranks' pacing come from the printed seed).  Everything flushed reads back
exactly; the killed files stay ``running`` (the reader's word) and a merge calls them
``incomplete``.  No process of the job survives it.
"""

from __future__ import annotations

import random
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from faults_checks import assert_flushed_prefix, check_problems, known_kill_inside_flush, series_lengths
from faults_harness import Job, merge, merged_statuses, processes_with_token, seed_for, signal_pids

import yprov4ml_hpc as prov4ml

BATCH = 500


@dataclass
class KilledJob:
    n: int
    seed: int
    victims: list[int]
    reported: dict[int, int]  # points per series each rank reported flushed before it died
    run_dir: Path
    leftover_after_exit: list[int]  # pids of the job still alive once mpiexec had exited


def _run_and_kill(workdir: Path, n: int, seed: int, kill_all: bool) -> KilledJob:
    rng = random.Random(seed)
    print(f"seed {seed}: {n} ranks, kill {'all' if kill_all else 'one'}")
    with Job(workdir) as job:
        job.mpiexec(n, "job_worker.py", str(job.save), str(job.ctl), "stream",
                    "--batch", str(BATCH), "--seed", str(seed))
        pids = job.pids(n)
        job.wait_files("progress", n)  # every rank has flushed at least one batch
        time.sleep(rng.uniform(0.0, 0.8))
        victims = list(range(n)) if kill_all else [rng.randrange(n)]
        signal_pids([pids[r] for r in victims], signal.SIGKILL)
        job.wait()
        time.sleep(0.2)  # hydra's cleanup is asynchronous to mpiexec's exit
        leftover = [p.pid for p in processes_with_token(job.token)]
        return KilledJob(n, seed, victims, job.read_ints("progress", n), job.run_dir, leftover)


@pytest.fixture(scope="module", params=[2, 4], ids=lambda n: f"n{n}")
def one_killed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> KilledJob:
    return _run_and_kill(
        tmp_path_factory.mktemp("kill1"), request.param, seed_for(f"sigkill-one-{request.param}"), False
    )


@pytest.fixture(scope="module")
def all_killed(tmp_path_factory: pytest.TempPathFactory) -> KilledJob:
    return _run_and_kill(tmp_path_factory.mktemp("killall"), 3, seed_for("sigkill-all-3"), True)


def _check_reader(job: KilledJob) -> dict[int, dict[str, int]]:
    data = prov4ml.load_run(job.run_dir)
    note = f"seed {job.seed}, victims {job.victims}"
    check_problems(data, note)
    assert data.world_size == job.n
    assert [r.rank for r in data.ranks] == list(range(job.n)), note
    assert data.missing_ranks == []
    with known_kill_inside_flush(note):
        return _check_ranks(job, data, note)


def _check_ranks(job: KilledJob, data: prov4ml.RunData, note: str) -> dict[int, dict[str, int]]:
    lengths = {}
    for info in data.ranks:
        if info.rank in job.victims:
            # SIGKILL: the process had no chance to write anything more.
            assert info.status == "running", f"{note}: rank {info.rank} is {info.status!r}"
            lengths[info.rank] = assert_flushed_prefix(data, info.rank, job.reported[info.rank], BATCH, note)
        else:
            # Killed by the launcher once a sibling died (hydra sends SIGKILL; SIGTERM would be fine too).
            assert info.status in ("running", "killed"), f"{note}: rank {info.rank} is {info.status!r}"
            if info.status == "running":
                lengths[info.rank] = assert_flushed_prefix(
                    data, info.rank, job.reported[info.rank], BATCH, note
                )
            else:
                lengths[info.rank] = series_lengths(data, info.rank)
                assert min(lengths[info.rank].values()) >= job.reported[info.rank], note
        assert data.params(info.rank) == {"mode": "stream", "batch": BATCH}
    return lengths


def _check_merge(job: KilledJob, lengths: dict[int, dict[str, int]]) -> None:
    data = prov4ml.load_run(job.run_dir)
    summary = merge(job.run_dir)
    statuses = merged_statuses(summary)
    assert sorted(statuses) == list(range(job.n))
    for info in data.ranks:
        want = "incomplete" if info.status == "running" else info.status
        assert statuses[info.rank] == want, f"seed {job.seed}: rank {info.rank}: {statuses}"
    assert summary["world_size"] == job.n
    counts = {(m["name"], m["context"]): m["count"] for m in summary["metrics"]}
    assert counts[("loss", "training")] == sum(v["loss"] for v in lengths.values())
    assert counts[("acc", "validation")] == sum(v["acc"] for v in lengths.values())


def test_sigkill_one_rank_reader(one_killed: KilledJob) -> None:
    """SIGKILL of one random rank: every rank reads back whole flushed batches, nothing less
    than it reported flushed; the victim stays ``running``."""
    _check_reader(one_killed)


def test_sigkill_one_rank_merge(one_killed: KilledJob) -> None:
    """...and ``yprov4ml-hpc merge`` reports the killed ranks ``incomplete`` and counts exactly
    the points the reader sees."""
    _check_merge(one_killed, _check_reader(one_killed))


def test_sigkill_one_rank_leaves_no_process(one_killed: KilledJob) -> None:
    """Once mpiexec has exited, no rank and no hydra proxy of the job is left running."""
    assert one_killed.leftover_after_exit == []


def test_sigkill_all_ranks_reader(all_killed: KilledJob) -> None:
    """SIGKILL of every rank at the same random moment: each keeps its flushed batches."""
    _check_reader(all_killed)


def test_sigkill_all_ranks_merge(all_killed: KilledJob) -> None:
    """...and merge reports every rank ``incomplete``."""
    _check_merge(all_killed, _check_reader(all_killed))
    assert set(merged_statuses(merge(all_killed.run_dir)).values()) == {"incomplete"}


def test_sigkill_all_ranks_leaves_no_process(all_killed: KilledJob) -> None:
    assert all_killed.leftover_after_exit == []


def test_sigkill_after_the_flush_timer_fired(tmp_path: Path) -> None:
    """Nothing is flushed by hand: the background timer (0.3 s) is the last flush.  SIGKILL
    after 1.5 s of quiet loses nothing: every point logged before the quiet reads back."""
    with Job(tmp_path) as job:
        job.srun_like(2, "job_worker.py", str(job.save), str(job.ctl), "timer", "--flushed", "700",
                      "--flush-interval", "0.3")
        logged = {rank: int(text) for rank, text in job.wait_files("ready", 2).items()}
        time.sleep(1.5)
        signal_pids(list(job.pids(2).values()), signal.SIGKILL)
        job.wait()
        run_dir = job.run_dir
    data = prov4ml.load_run(run_dir)
    assert data.problems == [] and {r.status for r in data.ranks} == {"running"}
    for rank in (0, 1):
        assert series_lengths(data, rank) == {"loss": logged[rank], "acc": logged[rank]}
