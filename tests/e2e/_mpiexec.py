"""Running a script under MPICH's ``mpiexec`` from an e2e test: where the launcher is, a skip
marker when there is none, and a run that can never hang the test session."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_BIN = Path(sysconfig.get_path("scripts"))
MPIEXEC = str(_BIN / "mpiexec") if (_BIN / "mpiexec").exists() else shutil.which("mpiexec")
needs_mpiexec = pytest.mark.skipif(MPIEXEC is None, reason="needs mpiexec (pip install mpich)")


def run_mpiexec(ranks: int, script: Path, *args: str, timeout: float = 180) -> tuple[int, str, str]:
    """``mpiexec -n ranks python script args`` with this checkout on PYTHONPATH and codecarbon off;
    returns (exit code, stdout, stderr).  A job still running at ``timeout`` fails the test, its
    whole process group killed."""
    assert MPIEXEC is not None
    env = {**os.environ, "PYTHONPATH": str(REPO), "YPROV4ML_HPC_CARBON": "0"}
    proc = subprocess.Popen(
        [MPIEXEC, "-n", str(ranks), sys.executable, str(script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"the job hung past {timeout} s:\n{out}\n{err[-3000:]}")
    return proc.returncode, out, err
