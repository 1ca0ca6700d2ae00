"""``mpiexec -n N yprov4ml-hpc merge``: the reading of rank files is spread over N processes and
the result is the serial merge's, byte for byte (document) and key for key (summary)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _runfactory import REPO, cli, make_run

MPIEXEC = shutil.which("mpiexec")
pytestmark = pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install mpich)")
# Fields that say when and by what a summary was made, not what it says.
_WHEN = ("generated_at",)


def _mpi_merge(n: int, run_dir: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "YPROV4ML_HPC_PROGRESS": "0"}
    return subprocess.run(
        [str(MPIEXEC), "-n", str(n), sys.executable, "-m", "yprov4ml_hpc", "merge", str(run_dir),
         "-o", str(out), *extra],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )


def _summary(out: Path) -> dict[str, object]:
    data = json.loads((out / "summary.json").read_text())
    collector = dict(data.pop("collector"))
    collector.pop("finalize_time_s", None)
    return {**{k: v for k, v in data.items() if k not in _WHEN}, "collector": collector}


def _document(out: Path) -> bytes:
    (doc,) = out.glob("prov_*.json")
    return doc.read_bytes()


@pytest.fixture(scope="module")
def damaged_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five ranks: rank 2 died silently, rank 3's file is garbage, rank 4 has no file."""
    run_dir = make_run(
        tmp_path_factory.mktemp("mpi-merge"), ranks=5, killed_rank=2, keep_summary=False, steps=40
    )
    ranks = run_dir / "ranks"
    (ranks / "rank_000003.h5").write_bytes(b"not an HDF5 file" * 64)
    for leftover in ranks.glob("rank_000004.*"):
        leftover.unlink()
    return run_dir


@pytest.mark.parametrize("n", [2, 4])
def test_mpi_merge_equals_serial_merge(damaged_run: Path, tmp_path: Path, n: int) -> None:
    serial = cli("merge", str(damaged_run), "-o", str(tmp_path / "serial"), "-j", "1")
    assert serial.returncode == 0, serial.stderr
    parallel = _mpi_merge(n, damaged_run, tmp_path / "mpi")
    assert parallel.returncode == 0, parallel.stdout + parallel.stderr
    assert _document(tmp_path / "mpi") == _document(tmp_path / "serial")
    assert _summary(tmp_path / "mpi") == _summary(tmp_path / "serial")
    # One process reports and writes; the others only read.
    assert parallel.stdout.count("wrote ") == serial.stdout.count("wrote "), parallel.stdout
    ranks = json.loads((tmp_path / "mpi" / "summary.json").read_text())["ranks"]
    statuses = {r["rank"]: r["status"] for r in ranks}
    assert statuses[2] == "incomplete" and statuses[3] == "missing" and statuses[4] == "missing"


def test_mpi_strict_merge_fails_on_every_process(damaged_run: Path, tmp_path: Path) -> None:
    proc = _mpi_merge(2, damaged_run, tmp_path / "strict", "--strict")
    assert proc.returncode != 0
    assert "rank_000003.h5" in proc.stderr
    assert not (tmp_path / "strict" / "summary.json").exists()
