"""Failed runs keep their provenance (issue 13, item 1): an exception out of the ``with`` block,
an uncaught exception, a script that never calls ``end_run`` still leave the PROV document and
summary.json, with each rank's status as it was; as one process and under ``mpiexec -n 2``.
SIGTERM keeps its own rule (flush, mark killed, die promptly: no document), tested in
test_crash_single.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import warnings
from pathlib import Path
from typing import Any

import prov
import pytest

import yprov4ml_hpc as prov4ml

SCRIPT = Path(__file__).with_name("scripts") / "failing_job.py"
REPO = Path(__file__).resolve().parents[2]
_BIN = Path(sysconfig.get_path("scripts"))
MPIEXEC = str(_BIN / "mpiexec") if (_BIN / "mpiexec").exists() else shutil.which("mpiexec")


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "YPROV4ML_HPC_CARBON": "0", "PYTHONWARNINGS": "ignore"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_JOB_ID", "SLURM_PROCID", "SLURM_NTASKS"):
        env.pop(name, None)
    return env


def _run(
    launcher: list[str], save_dir: Path, mode: str, failing: int, finalize_timeout_s: float = 5
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*launcher, sys.executable, str(SCRIPT), str(save_dir), mode, str(failing), str(finalize_timeout_s)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        env=_env(),
    )


def _statuses(run_dir: Path) -> tuple[list[str], list[str], dict[int, str]]:
    """(statuses in the rank files, in summary.json, in the PROV document read by `prov`)."""
    files = [r.status for r in prov4ml.load_run(run_dir).ranks]
    summary = [r["status"] for r in json.loads((run_dir / "summary.json").read_text())["ranks"]]
    path = run_dir / "prov_fail_job.json"
    raw: dict[str, Any] = json.loads(path.read_text())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        document = prov.read(str(path), format="json")
    assert len(document.get_records()) == sum(len(v) for k, v in raw.items() if k != "prefix")
    in_prov = {}
    for record in document.get_records(prov.model.ProvActivity):
        attrs = {str(k.localpart): v for k, v in record.attributes}
        if "rank" in attrs and "status" in attrs and "context" not in attrs:
            in_prov[int(attrs["rank"])] = str(attrs["status"])
    return files, summary, in_prov


SINGLE = [("with-raise", "failed", 1), ("uncaught", "failed", 1), ("no-end", "finished", 0)]


@pytest.mark.parametrize(("mode", "status", "code"), SINGLE)
def test_one_process_gets_its_document(tmp_path: Path, mode: str, status: str, code: int) -> None:
    proc = _run([], tmp_path, mode, 0)
    assert proc.returncode == code, proc.stderr
    assert ("RuntimeError: training crashed" in proc.stderr) == (status == "failed")
    files, summary, in_prov = _statuses(tmp_path / "fail_job")
    assert files == summary == [status]
    assert in_prov == {0: status}


MULTI = [
    ("with-raise", 0, ["failed", "finished"]),
    ("with-raise", 1, ["finished", "failed"]),
    ("uncaught", 0, ["failed", "finished"]),
    ("uncaught", 1, ["finished", "failed"]),
    ("no-end", 0, ["finished", "finished"]),
]


@pytest.mark.skipif(MPIEXEC is None, reason="needs mpiexec (pip install mpich)")
@pytest.mark.parametrize(("mode", "failing", "expected"), MULTI)
def test_two_ranks_get_one_document(tmp_path: Path, mode: str, failing: int, expected: list[str]) -> None:
    """Rank 0 finalizes when it fails (waiting at most finalize_timeout_s=5 for the other);
    a failed rank 1 closes its file as failed without waiting, and rank 0 reads it from disk."""
    assert MPIEXEC is not None
    proc = _run([MPIEXEC, "-n", "2"], tmp_path, mode, failing)
    assert proc.returncode == (0 if mode == "no-end" else 1), proc.stderr
    files, summary, in_prov = _statuses(tmp_path / "fail_job")
    assert files == summary == expected
    assert in_prov == dict(enumerate(expected))


@pytest.mark.skipif(MPIEXEC is None, reason="needs mpiexec (pip install mpich)")
@pytest.mark.parametrize("mode", ["with-raise", "uncaught"])
def test_rank_0_does_not_wait_for_a_rank_that_failed(tmp_path: Path, mode: str) -> None:
    """A failed rank 1 tells rank 0 over MPI that it will not finalize: rank 0 reads its closed
    file at once instead of waiting finalize_timeout_s (600 s here: the job would outlive this
    test's 240 s limit and fail it with TimeoutExpired)."""
    assert MPIEXEC is not None
    proc = _run([MPIEXEC, "-n", "2"], tmp_path, mode, 1, finalize_timeout_s=600)
    assert proc.returncode == 1, proc.stderr
    files, summary, in_prov = _statuses(tmp_path / "fail_job")
    assert files == summary == ["finished", "failed"]
    assert in_prov == {0: "finished", 1: "failed"}
