"""Shared pytest fixtures for unit and e2e tests (tests/mpi has its own harness)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"  # kept in the repository: a plain clone runs every test


@pytest.fixture(autouse=True)
def _clean_launcher_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests run singleton unless they set launcher variables themselves."""
    for name in (
        "OMPI_COMM_WORLD_RANK",
        "OMPI_COMM_WORLD_SIZE",
        "PMI_RANK",
        "PMI_SIZE",
        "PMIX_RANK",
        "MPI_LOCALRANKID",
        "MPI_LOCALNRANKS",
        "SLURM_PROCID",
        "SLURM_NTASKS",
        "SLURM_JOB_ID",
        "SLURM_STEP_ID",
        "SLURM_LOCALID",
        "RANK",
        "WORLD_SIZE",
        "LOCAL_RANK",
        "LOCAL_WORLD_SIZE",
        "TORCHELASTIC_RUN_ID",
        "YPROV4ML_HPC_SAVE_DIR",
        "YPROV4ML_HPC_SYSTEM_METRICS_INTERVAL_S",
    ):
        monkeypatch.delenv(name, raising=False)
    # codecarbon's tracker costs ~2 s of CPU per start: tests that exercise it turn it back on.
    monkeypatch.setenv("YPROV4ML_HPC_CARBON", "0")


@pytest.fixture(autouse=True)
def _no_active_run() -> Iterator[None]:
    import yprov4ml_hpc

    yield
    run = yprov4ml_hpc.active_run()
    if run is not None:  # a failed test must not leak its run into the next one
        run.end("failed", "test teardown", finalize=False)
