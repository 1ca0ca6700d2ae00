"""MPI test harness: run with ``mpiexec -n N python -m mpi4py -m pytest -x tests/mpi``.

A failing test on one rank would leave the others blocked in a collective forever, so any
failure aborts the whole MPI job (``COMM_WORLD.Abort``); pytest-timeout bounds each test and
``.ci/run`` puts an outer ``timeout`` around the launcher.  Tests must pass at any rank count.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# codecarbon costs ~2 s of CPU per start on an oversubscribed machine; the tests that
# check it set YPROV4ML_HPC_CARBON=1 themselves.
os.environ.setdefault("YPROV4ML_HPC_CARBON", "0")

MPI = pytest.importorskip("mpi4py.MPI", reason="tests/mpi need mpi4py and an MPI library")


@pytest.fixture(scope="session")
def comm() -> Any:
    return MPI.COMM_WORLD


@pytest.fixture
def shared_tmp(comm: Any) -> Iterator[Path]:
    """A temporary directory that rank 0 chooses and broadcasts: the same path on every rank."""
    path = Path(tempfile.mkdtemp(prefix="yprov4ml-mpi-")) if comm.rank == 0 else None
    path = comm.bcast(path, root=0)
    yield path
    comm.Barrier()
    if comm.rank == 0:
        shutil.rmtree(path, ignore_errors=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        # Print first: Abort kills this process before pytest's own report would be written.
        sys.stderr.write(f"\n[rank {MPI.COMM_WORLD.rank}] FAILED {item.nodeid}\n{report.longreprtext}\n")
        sys.stderr.flush()
        MPI.COMM_WORLD.Abort(1)


@pytest.fixture(autouse=True)
def _no_active_run() -> Iterator[None]:
    import yprov4ml_hpc

    yield
    run = yprov4ml_hpc.active_run()
    if run is not None:  # a test that failed before end_run must not leak its run
        yprov4ml_hpc.end_run()
