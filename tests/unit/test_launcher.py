"""Rank detection from each launcher's environment (no launcher needed to run these)."""

from __future__ import annotations

import pytest

from yprov4ml_hpc import ConfigError
from yprov4ml_hpc._launcher import detect_launch


def test_singleton() -> None:
    info = detect_launch(env={})
    assert (info.rank, info.world_size, info.local_rank, info.launcher) == (0, 1, 0, "singleton")
    assert info.comm is None


def test_explicit_rank_wins_over_environment() -> None:
    info = detect_launch(rank=3, env={"RANK": "1", "WORLD_SIZE": "8"})
    assert (info.rank, info.world_size, info.launcher) == (3, 8, "explicit")


def test_explicit_rank_without_world_size() -> None:
    info = detect_launch(rank=5, env={})
    assert (info.rank, info.world_size) == (5, 6)


@pytest.mark.parametrize("bad", [-1, "2", 1.0, True])
def test_explicit_rank_must_be_a_non_negative_int(bad: object) -> None:
    with pytest.raises(ConfigError, match="rank"):
        detect_launch(rank=bad, env={})  # type: ignore[arg-type]


def test_slurm_step() -> None:
    env = {
        "SLURM_PROCID": "5",
        "SLURM_NTASKS": "8",
        "SLURM_LOCALID": "1",
        "SLURM_JOB_ID": "4242",
        "SLURM_STEP_ID": "0",
        "SLURM_TASKS_PER_NODE": "4(x2)",
    }
    info = detect_launch(env=env)
    assert (info.rank, info.world_size, info.local_rank, info.local_size) == (5, 8, 1, 4)
    assert (info.launcher, info.job_id) == ("slurm", "4242.0")


def test_slurm_batch_script_without_step_is_a_singleton_with_a_job_id() -> None:
    info = detect_launch(env={"SLURM_PROCID": "0", "SLURM_NTASKS": "8", "SLURM_JOB_ID": "77"})
    assert (info.rank, info.world_size, info.launcher, info.job_id) == (0, 1, "singleton", "77")


def test_torchrun() -> None:
    env = {
        "RANK": "2",
        "WORLD_SIZE": "4",
        "LOCAL_RANK": "0",
        "LOCAL_WORLD_SIZE": "2",
        "TORCHELASTIC_RUN_ID": "abc",
        "TORCHELASTIC_RESTART_COUNT": "1",
    }
    info = detect_launch(env=env)
    assert (info.rank, info.world_size, info.local_rank, info.local_size) == (2, 4, 0, 2)
    assert (info.launcher, info.job_id) == ("torchrun", "abc.r1")


def test_bad_integer_in_environment_is_named() -> None:
    with pytest.raises(ConfigError, match="RANK='x'"):
        detect_launch(env={"RANK": "x", "WORLD_SIZE": "2"})


def test_mpi_environment_without_mpi4py_falls_back_to_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_mpi(name: str, *args: object, **kwargs: object) -> object:
        if name.startswith("mpi4py"):
            raise ImportError("mpi4py hidden by the test")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_mpi)
    env = {"PMI_RANK": "1", "PMI_SIZE": "4", "MPI_LOCALRANKID": "1", "MPI_LOCALNRANKS": "2"}
    with pytest.warns(UserWarning, match="mpi4py"):
        info = detect_launch(env=env)
    assert (info.rank, info.world_size, info.local_rank, info.local_size, info.launcher) == (
        1,
        4,
        1,
        2,
        "mpi-env",
    )
