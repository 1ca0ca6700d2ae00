"""jobs/: the Slurm batch script and its merge follow-up, run with stand-ins for srun and sbatch.

`srun` becomes `mpiexec -n 2` with SLURM_STEP_ID set; `sbatch` copies the script into a spool
directory and runs it from there, as Slurm does: the scripts' own logic (finding and submitting
the follow-up, finding the job's runs, merge, report) runs for real.
"""

from __future__ import annotations

import functools
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


# A stand-in for sbatch that does what matters here as Slurm does: the batch script is
# COPIED into a spool directory and run from there (so "$0" is the copy), in the directory
# sbatch was called from, with SLURM_JOB_ID and SLURM_SUBMIT_DIR set and --export applied.
# A job submitted from inside a job (the merge follow-up, --dependency=afterany) is queued
# and runs when the outer sbatch's job has ended.
FAKE_SBATCH = """#!{python}
import json, os, shutil, subprocess, sys
from pathlib import Path
spool = Path({spool!r})
queue = spool / "queue.jsonl"
args = sys.argv[1:]
options = [a for a in args if a.startswith("--")]
script = next(a for a in args if not a.startswith("--"))
if not os.path.isfile(script):
    sys.exit(f"sbatch: error: Unable to open file {{script}}")
job_id = 4242 + sum(1 for _ in spool.glob("job*"))
copy = spool / f"job{{job_id}}" / "slurm_script"
copy.parent.mkdir(parents=True)
shutil.copy(script, copy)
env = {{k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}}
for option in options:
    if option.startswith("--export="):
        for item in option.split("=", 1)[1].split(",")[1:]:
            key, _, value = item.partition("=")
            env[key] = value
env.update(SLURM_JOB_ID=str(job_id), SLURM_SUBMIT_DIR=os.getcwd())
with open(spool / "sbatch.log", "a") as log:
    log.write(" ".join(args) + "\\n")
with open(queue, "a") as handle:
    handle.write(json.dumps({{"copy": str(copy), "cwd": os.getcwd(), "env": env}}) + "\\n")
print(f"Submitted batch job {{job_id}}")
if "SLURM_JOB_ID" not in os.environ:  # the user's own sbatch: run the queue, in order
    done = 0
    while done < len(lines := queue.read_text().splitlines()):
        job = json.loads(lines[done])
        done += 1
        out = Path(job["copy"]).with_name("slurm.out")
        with open(out, "w") as handle:
            rc = subprocess.run(["bash", job["copy"]], cwd=job["cwd"], env=job["env"],
                                stdout=handle, stderr=subprocess.STDOUT).returncode
        (out.parent / "rc").write_text(str(rc))
"""


def _stubs(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "spool").mkdir()
    (bin_dir / "srun").write_text(
        '#!/bin/bash\nwhile [[ "$1" == --* ]]; do shift; done\n'
        f'export SLURM_STEP_ID=0\nexec timeout 300 {MPIEXEC} -n 2 "$@"\n'
    )
    (bin_dir / "sbatch").write_text(FAKE_SBATCH.format(python=sys.executable, spool=str(tmp_path / "spool")))
    for stub in bin_dir.iterdir():
        stub.chmod(0o755)
    return bin_dir


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("SLURM_")
    }
    return {
        **env,
        "PATH": f"{_stubs(tmp_path)}:{Path(sys.executable).parent}:{os.environ['PATH']}",
        "PYTHONPATH": str(REPO),
        "PROV_DIR": str(tmp_path / "prov"),
        "YPROV4ML_HPC_CARBON": "0",
        **extra,
    }


def _job(tmp_path: Path, job_id: int) -> tuple[int, str]:
    folder = tmp_path / "spool" / f"job{job_id}"
    return int((folder / "rc").read_text()), (folder / "slurm.out").read_text()


def test_sbatch_from_the_repository_runs_train_then_the_merge_follow_up(tmp_path: Path) -> None:
    """sbatch jobs/train.sbatch, run as Slurm runs it (a spool copy): the follow-up merge
    job is found through SLURM_SUBMIT_DIR, submitted with the dependency, and runs."""
    submit = subprocess.run(
        ["sbatch", "jobs/train.sbatch"],
        cwd=REPO,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert submit.returncode == 0, submit.stderr[-3000:]
    train_rc, train_out = _job(tmp_path, 4242)
    assert train_rc == 0, train_out[-3000:]
    submitted = (tmp_path / "spool" / "sbatch.log").read_text().splitlines()
    assert submitted[0] == "jobs/train.sbatch"
    assert "--dependency=afterany:4242" in submitted[1] and "TRAIN_JOB_ID=4242" in submitted[1]
    assert submitted[1].endswith(f"{REPO}/jobs/merge.sbatch")
    merge_rc, merge_out = _job(tmp_path, 4243)
    assert merge_rc == 0, merge_out[-3000:]
    [run_dir] = [p for p in (tmp_path / "prov").iterdir() if p.is_dir()]
    assert "2 finished" in merge_out
    assert (run_dir / "summary.json").is_file() and (run_dir / "report.html").is_file()


def test_sbatch_from_elsewhere_needs_merge_script(tmp_path: Path) -> None:
    """Submitted from a directory without jobs/: a clear error before any training, and
    MERGE_SCRIPT (an absolute path) makes it work."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    train = str(REPO / "jobs" / "train.sbatch")
    script = str(REPO / "examples" / "quickstart_mpi.py")
    env = _env(tmp_path, SCRIPT=script)
    run = functools.partial(
        subprocess.run, cwd=elsewhere, capture_output=True, text=True, timeout=600, check=False
    )
    assert run(["sbatch", train], env=env).returncode == 0
    rc, out = _job(tmp_path, 4242)
    assert rc == 2 and "merge.sbatch not found" in out and "MERGE_SCRIPT" in out
    assert not (tmp_path / "prov").exists()  # nothing trained
    shutil.rmtree(tmp_path / "spool")
    shutil.rmtree(tmp_path / "bin")
    env = _env(tmp_path, SCRIPT=script, MERGE_SCRIPT=str(REPO / "jobs" / "merge.sbatch"))
    assert run(["sbatch", train], env=env).returncode == 0
    assert _job(tmp_path, 4242)[0] == 0 and _job(tmp_path, 4243)[0] == 0
    [run_dir] = [p for p in (tmp_path / "prov").iterdir() if p.is_dir()]
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
