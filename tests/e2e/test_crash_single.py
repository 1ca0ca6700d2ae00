"""Real processes, real signals: what survives SIGKILL, SIGTERM, exceptions and a missing end_run."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import yprov4ml_hpc as prov4ml

SCRIPT = Path(__file__).with_name("scripts") / "log_then_wait.py"


def _launch(tmp_path: Path, flushed: int, unflushed: int, *flags: str) -> tuple[subprocess.Popen[str], Path]:
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(tmp_path), str(flushed), str(unflushed), *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    run_dir = Path(proc.stdout.readline().strip())
    assert proc.stdout.readline().strip() == "READY", proc.stderr.read() if proc.stderr else ""
    return proc, run_dir


def _loss(run_dir: Path) -> np.ndarray:
    return prov4ml.load_run(run_dir).series("loss", "training", 0).value


def test_sigkill_loses_only_what_was_not_flushed(tmp_path: Path) -> None:
    proc, run_dir = _launch(tmp_path, 5000, 123)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    data = prov4ml.load_run(run_dir)
    assert data.ranks[0].status == "running"  # died without a word: a merge calls it incomplete
    np.testing.assert_array_equal(_loss(run_dir), np.arange(5000) * 0.5)
    assert data.params()["flushed"] == 5000


def test_sigterm_flushes_everything_marks_killed_and_still_dies(tmp_path: Path) -> None:
    proc, run_dir = _launch(tmp_path, 5000, 123)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGTERM  # the default action still ran
    data = prov4ml.load_run(run_dir)
    assert data.ranks[0].status == "killed"
    assert data.ranks[0].end_ns > data.ranks[0].start_ns
    np.testing.assert_array_equal(_loss(run_dir), np.arange(5123) * 0.5)
    assert any(e["event"] == "end" and "SIGTERM" in e["reason"] for e in data.events())
    # SIGTERM's rule: flush, mark, die promptly; no finalize (Slurm's SIGKILL is coming).
    assert not (run_dir / "summary.json").exists()


def test_sigterm_chains_to_the_previous_handler(tmp_path: Path) -> None:
    proc, run_dir = _launch(tmp_path, 10, 5, "--chain-handler")
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert "PREVIOUS-HANDLER-RAN" in out
    assert proc.returncode == 42
    assert prov4ml.load_run(run_dir).ranks[0].status == "killed"
    assert len(_loss(run_dir)) == 15


def test_previous_handler_gets_later_sigterms_too(tmp_path: Path) -> None:
    """The run ignores a second SIGTERM while it ends (see F8); once ended, the handler that was
    there before start_run is back and gets every later SIGTERM."""
    proc, run_dir = _launch(tmp_path, 10, 5, "--chain-handler", "--keep-living")
    assert proc.stdout is not None
    for _ in range(2):
        proc.send_signal(signal.SIGTERM)
        assert proc.stdout.readline().strip() == "PREVIOUS-HANDLER-RAN"
    assert proc.poll() is None  # the handler chose to go on living
    proc.kill()
    proc.communicate(timeout=30)
    assert prov4ml.load_run(run_dir).ranks[0].status == "killed"
    assert len(_loss(run_dir)) == 15


@pytest.mark.parametrize(("flag", "status", "code"), [("--no-end", "finished", 0), ("--raise", "failed", 1)])
def test_exit_without_end_run_keeps_everything(tmp_path: Path, flag: str, status: str, code: int) -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path), "100", "7", flag],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == code, proc.stderr
    run_dir = Path(proc.stdout.splitlines()[0])
    data = prov4ml.load_run(run_dir)
    assert data.ranks[0].status == status
    assert len(_loss(run_dir)) == 107
    summary = json.loads((run_dir / "summary.json").read_text())  # written at exit, failed or not
    assert [r["status"] for r in summary["ranks"]] == [status]
    assert next(m for m in summary["metrics"] if m["name"] == "loss")["count"] == 107
