"""SIGTERM of every rank, as Slurm does at the time limit, then SIGKILL after a grace period.

Slurm signals every process of the job step with SIGTERM, waits ``KillWait`` seconds, then
sends SIGKILL.  Each subject rank has flushed FLUSHED points per series and holds UNFLUSHED
more in memory (one rank holds BIG more, so its SIGTERM flush takes a while).

What may be lost:
- grace 2 s: nothing.  Every file is ``killed``, holds every logged point and an ``end``
  event naming SIGTERM; a merge reports every rank ``killed``.
- grace 0 s (SIGKILL right after SIGTERM): at most what was not flushed.  A file is either
  ``killed`` and complete, or still ``running`` with the FLUSHED points, or (killed in the
  middle of the SIGTERM flush) ``running`` with everything; it is never unreadable.

Two launchers: N processes with Slurm's variables and no MPI (what ``srun`` starts for a
non-MPI job), and a real ``mpiexec`` (MPICH hydra), where every process of the job (mpiexec,
proxies, ranks) gets the SIGTERM, as under Slurm.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from faults_checks import check_problems, known_kill_inside_flush, series_lengths
from faults_harness import Job, merge, merged_statuses, processes_with_token, signal_pids

import yprov4ml_hpc as prov4ml

FLUSHED = 1000
UNFLUSHED = 300
BIG = 1_500_000  # rank 0's SIGTERM flush then takes a few hundred ms, its siblings' a few
BIG_RANK = 0


@dataclass
class TermJob:
    n: int
    grace_s: float
    launcher: str
    run_dir: Path
    logged: dict[int, int]  # points per series each rank had logged when the signal came


def _sigterm_job(workdir: Path, launcher: str, n: int, grace_s: float) -> TermJob:
    with Job(workdir) as job:
        args = ("pause", "--flushed", str(FLUSHED), "--unflushed", str(UNFLUSHED),
                "--big-rank", str(BIG_RANK), "--big", str(BIG))
        if launcher == "mpiexec":
            job.mpiexec(n, "job_worker.py", str(job.save), str(job.ctl), *args)
        else:
            job.srun_like(n, "job_worker.py", str(job.save), str(job.ctl), *args)
        logged = {rank: int(text) for rank, text in job.wait_files("ready", n).items()}
        pids = job.pids(n)
        # Slurm's SIGTERM reaches every process of the step at (nearly) the same moment.
        everyone = sorted({*pids.values(), *(p.pid for p in processes_with_token(job.token))})
        signal_pids(everyone, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and processes_with_token(job.token):
            time.sleep(0.02)
        job.kill_all()  # SIGKILL whatever is left, like Slurm after KillWait
        return TermJob(n, grace_s, launcher, job.run_dir, logged)


def _check_grace(job: TermJob) -> prov4ml.RunData:
    data = prov4ml.load_run(job.run_dir)
    assert data.problems == []
    assert [r.rank for r in data.ranks] == list(range(job.n))
    for info in data.ranks:
        assert info.status == "killed", f"rank {info.rank}: {info.status!r} ({job.launcher})"
        assert info.end_ns > info.start_ns
        lengths = series_lengths(data, info.rank)
        assert lengths == {"loss": job.logged[info.rank], "acc": job.logged[info.rank]}, info.rank
        ends = [e for e in data.events(info.rank) if e["event"] == "end"]
        assert len(ends) == 1 and "SIGTERM" in ends[0]["reason"], ends
    return data


def _check_no_grace(job: TermJob) -> prov4ml.RunData:
    data = prov4ml.load_run(job.run_dir)
    check_problems(data, f"{job.launcher}, SIGKILL right after SIGTERM")
    assert [r.rank for r in data.ranks] == list(range(job.n))
    for info in data.ranks:
        with known_kill_inside_flush(f"{job.launcher}, SIGKILL right after SIGTERM"):
            lengths = series_lengths(data, info.rank)
        everything = job.logged[info.rank]
        if info.status == "killed":
            assert lengths == {"loss": everything, "acc": everything}, info.rank
        else:
            assert info.status == "running", info.status
            # Killed during its SIGTERM hand-off: every completed write is there (series_lengths
            # checked each point); the journal writer may have completed some batches beyond the
            # last explicit flush (a hand-off, part of the SIGTERM drain), never fewer.
            for metric, count in lengths.items():
                assert FLUSHED <= count <= everything, f"rank {info.rank} {metric}: {count} points"
    return data


def _check_merge(job: TermJob, data: prov4ml.RunData) -> None:
    statuses = merged_statuses(merge(job.run_dir))
    want = {r.rank: "incomplete" if r.status == "running" else r.status for r in data.ranks}
    assert statuses == want


@pytest.fixture(scope="module")
def srun_grace(tmp_path_factory: pytest.TempPathFactory) -> TermJob:
    return _sigterm_job(tmp_path_factory.mktemp("srun_grace"), "srun", 3, 2.0)


@pytest.fixture(scope="module")
def srun_no_grace(tmp_path_factory: pytest.TempPathFactory) -> TermJob:
    return _sigterm_job(tmp_path_factory.mktemp("srun_nograce"), "srun", 3, 0.0)


@pytest.fixture(scope="module")
def mpi_no_grace(tmp_path_factory: pytest.TempPathFactory) -> TermJob:
    return _sigterm_job(tmp_path_factory.mktemp("mpi_nograce"), "mpiexec", 4, 0.0)


def test_sigterm_with_grace_srun(srun_grace: TermJob) -> None:
    """srun-like job, SIGTERM then SIGKILL after 2 s: every file ``killed`` and complete."""
    _check_grace(srun_grace)


def test_sigterm_with_grace_srun_merge(srun_grace: TermJob) -> None:
    """...and merge reports every rank ``killed``."""
    _check_merge(srun_grace, _check_grace(srun_grace))


def test_sigterm_without_grace_srun(srun_no_grace: TermJob) -> None:
    """srun-like job, SIGKILL right after SIGTERM: readable, at most the unflushed points lost."""
    _check_no_grace(srun_no_grace)


def test_sigterm_without_grace_srun_merge(srun_no_grace: TermJob) -> None:
    _check_merge(srun_no_grace, _check_no_grace(srun_no_grace))


def test_sigterm_without_grace_mpiexec(mpi_no_grace: TermJob) -> None:
    """mpiexec job, SIGKILL right after SIGTERM: readable, at most the unflushed points lost."""
    _check_no_grace(mpi_no_grace)


def test_sigterm_without_grace_mpiexec_merge(mpi_no_grace: TermJob) -> None:
    _check_merge(mpi_no_grace, _check_no_grace(mpi_no_grace))


def test_sigterm_with_grace_mpiexec(tmp_path: Path) -> None:
    """mpiexec job, SIGTERM to every process, SIGKILL after 2 s: every file ``killed`` and complete.

    Rank 0 holds 1.5 million unflushed points, so its SIGTERM flush outlasts its siblings'.
    Each rank gets the SIGTERM twice: from the test (Slurm) and forwarded by mpiexec (F8).
    """
    _check_grace(_sigterm_job(tmp_path, "mpiexec", 4, 2.0))


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.parametrize("sigterms_to_rank_1", [1, 2], ids=["one", "forwarded_again"])
def test_mpiexec_rank_that_flushed_waits_for_its_siblings(tmp_path: Path, sigterms_to_rank_1: int) -> None:
    """The mechanism behind F8's fix, made deterministic: SIGTERM reaches rank 1 first and rank
    0 a second later (a slow flush, a late signal).  Rank 1 must still be alive then, waiting in
    MPI_Finalize: had it died, hydra would have SIGKILLed rank 0 before its flush (its file
    would say ``running``).  Then both end ``killed`` with every point.

    ``forwarded_again``: F8's cause.  MPICH's mpiexec forwards the SIGTERM it gets to every rank,
    so under Slurm a rank gets a second one, late on a busy node; arriving during the wait, it
    must not kill the rank."""
    with Job(tmp_path) as job:
        job.mpiexec(2, "job_worker.py", str(job.save), str(job.ctl), "pause",
                    "--flushed", str(FLUSHED), "--unflushed", str(UNFLUSHED))
        logged = {rank: int(text) for rank, text in job.wait_files("ready", 2).items()}
        pids = job.pids(2)
        for _ in range(sigterms_to_rank_1):
            signal_pids([pids[1]], signal.SIGTERM)
            time.sleep(0.5)  # then rank 1 has flushed and waits in MPI_Finalize
        time.sleep(1.0 - 0.5 * sigterms_to_rank_1)
        assert _alive(pids[1]), "rank 1 exited before rank 0 flushed: mpiexec kills rank 0 then"
        assert _alive(pids[0]), "rank 0 was killed when rank 1 ended"
        signal_pids([pids[0]], signal.SIGTERM)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (_alive(pids[0]) or _alive(pids[1])):
            time.sleep(0.05)
        assert not _alive(pids[0]) and not _alive(pids[1]), "the ranks did not end after SIGTERM"
        job.kill_all()
        _check_grace(TermJob(2, 1.0, "mpiexec", job.run_dir, logged))


def test_mpiexec_rank_waits_for_siblings_only_so_long(tmp_path: Path) -> None:
    """A sibling that never flushes (never signalled here; stuck in a collective in real life)
    must not keep a SIGTERMed rank alive: the wait is bounded, and that rank's file is complete."""
    with Job(tmp_path) as job:
        job.mpiexec(2, "job_worker.py", str(job.save), str(job.ctl), "pause",
                    "--flushed", str(FLUSHED), "--unflushed", str(UNFLUSHED))
        logged = int(job.wait_files("ready", 2)[1])
        pids = job.pids(2)
        signal_pids([pids[1]], signal.SIGTERM)
        deadline = time.monotonic() + 60  # liveness, not speed: the watchdog fires after a few s
        while time.monotonic() < deadline and _alive(pids[1]):
            time.sleep(0.05)
        assert not _alive(pids[1]), "a SIGTERMed rank waited for its sibling without end"
        job.kill_all()
        data = prov4ml.load_run(job.run_dir)
        info = next(r for r in data.ranks if r.rank == 1)
        assert info.status == "killed"
        assert series_lengths(data, 1) == {"loss": logged, "acc": logged}
