"""jobs/: the Slurm batch script and its merge follow-up, run with stand-ins for srun and sbatch.

`srun` becomes `mpiexec -n 2` with SLURM_STEP_ID set, `sbatch` records its arguments: the
scripts' own logic (submitting the follow-up, finding the job's runs, merge, report) runs for real.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MPIEXEC = Path(sysconfig.get_path("scripts")) / "mpiexec"
if not MPIEXEC.exists():
    MPIEXEC = Path(shutil.which("mpiexec") or "/nonexistent")
pytestmark = pytest.mark.skipif(not MPIEXEC.exists(), reason="mpiexec not installed (pip install mpich)")


def _stubs(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text(
        '#!/bin/bash\nwhile [[ "$1" == --* ]]; do shift; done\n'
        f'export SLURM_STEP_ID=0\nexec timeout 300 {MPIEXEC} -n 2 "$@"\n'
    )
    (bin_dir / "sbatch").write_text(f'#!/bin/bash\necho "$*" >> {tmp_path}/sbatch.log\n')
    for stub in bin_dir.iterdir():
        stub.chmod(0o755)
    return bin_dir


def test_train_then_merge_follow_up(tmp_path: Path) -> None:
    prov = tmp_path / "prov"
    env = {
        **os.environ,
        "PATH": f"{_stubs(tmp_path)}:{Path(sys.executable).parent}:{os.environ['PATH']}",
        "PYTHONPATH": str(REPO),
        "SLURM_JOB_ID": "4242",
        "PROV_DIR": str(prov),
        "YPROV4ML_HPC_CARBON": "0",
    }
    train = subprocess.run(
        ["bash", "jobs/train.sbatch"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert train.returncode == 0, train.stderr[-3000:]
    submitted = (tmp_path / "sbatch.log").read_text()
    assert "--dependency=afterany:4242" in submitted and "TRAIN_JOB_ID=4242" in submitted
    [run_dir] = [p for p in prov.iterdir() if p.is_dir()]
    (run_dir / "summary.json").unlink()  # as if the job had been killed before its finalize
    merge_env = {**env, "TRAIN_JOB_ID": "4242"}
    del merge_env["SLURM_JOB_ID"]
    merge = subprocess.run(
        ["bash", "jobs/merge.sbatch"],
        cwd=REPO,
        env=merge_env,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert merge.returncode == 0, merge.stderr[-3000:]
    assert (run_dir / "summary.json").is_file() and "2 finished" in merge.stdout
    assert (run_dir / "report.html").is_file()


def test_merge_follow_up_without_runs_fails_clearly(tmp_path: Path) -> None:
    (tmp_path / "prov").mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "PROV_DIR": str(tmp_path / "prov"),
        "TRAIN_JOB_ID": "999",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    merge = subprocess.run(
        ["bash", "jobs/merge.sbatch"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert merge.returncode == 1 and "no run directory of job 999" in merge.stdout
