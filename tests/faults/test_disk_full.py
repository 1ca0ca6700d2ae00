"""Disk full while writing: RLIMIT_FSIZE in a child process, SIGXFSZ ignored (so write() fails
with EFBIG exactly as it fails with ENOSPC on a full disk or an exhausted quota).  The child
sets the limit itself before importing anything (no preexec_fn: pytest may run threads).

What may be lost: the points of the flush that failed and anything logged after it.
Everything flushed before reads back exactly, the rank journal stays readable (the writer cuts
a torn frame off), an explicit ``flush()`` raises a StorageError that names the journal,
logging never raises (it warns once), end_run reports what could not be written, and the
process exits normally.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from faults_harness import SCRIPTS, clean_env, merge, merged_statuses

import yprov4ml_hpc as prov4ml

LIMIT = 400_000  # bytes: room for the new rank file and a few flushes of 1000 points


@dataclass
class Outcome:
    returncode: int
    stderr: str
    lines: list[dict[str, Any]] = field(default_factory=list)

    def first(self, key: str) -> dict[str, Any] | None:
        return next((line for line in self.lines if key in line), None)

    @property
    def flushed(self) -> int:
        return max([line["flushed"] for line in self.lines if "flushed" in line], default=0)

    @property
    def run_dir(self) -> Path:
        line = self.first("run_dir")
        assert line is not None, self.stderr[-3000:]
        return Path(line["run_dir"])


def _run(save: Path, mode: str, limit: int, *extra: str) -> Outcome:
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / "disk_full.py"), str(limit), str(save), mode, *extra],
        capture_output=True, text=True, timeout=120, env=clean_env(),
        check=False,
    )
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return Outcome(proc.returncode, proc.stderr, lines)


@pytest.fixture(scope="module")
def flush_full(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    return _run(tmp_path_factory.mktemp("full"), "flush", LIMIT)


def test_flush_on_full_disk_raises_storage_error(flush_full: Outcome) -> None:
    """The flush that does not fit raises StorageError (an OSError) naming the rank file."""
    error = flush_full.first("error")
    assert error is not None, flush_full.lines
    assert error["error"] == "flush"
    assert error["type"] == "StorageError" and error["yprov4ml"], error
    assert "OSError" in error["builtins"]
    assert "rank_000000.journal" in error["message"] and "File too large" in error["message"], error
    assert flush_full.flushed >= 1000  # some flushes fitted before the limit


def test_data_flushed_before_disk_full_is_readable(flush_full: Outcome) -> None:
    """The rank journal stays readable; every point flushed before the failure reads back."""
    data = prov4ml.load_run(flush_full.run_dir)
    assert data.problems == []
    assert [p.name for p in (flush_full.run_dir / "ranks").iterdir()] == ["rank_000000.journal"]
    journal = flush_full.run_dir / "ranks" / "rank_000000.journal"
    assert journal.stat().st_size <= LIMIT  # cut back to the last good frame
    assert data.params() == {"lr": 0.001}
    for metric, context, sign in (("loss", "training", 0.5), ("acc", "validation", -1.0)):
        series = data.series(metric, context, 0)
        assert len(series) >= flush_full.flushed
        np.testing.assert_array_equal(series.step, np.arange(len(series)))
        np.testing.assert_array_equal(series.value, np.arange(len(series)) * sign)


def test_end_run_after_disk_full_reports_what_was_not_written(flush_full: Outcome) -> None:
    """end_run after the failure ends the run and raises StorageError saying what was not written."""
    end = flush_full.first("end_run")
    assert end is not None, flush_full.lines
    assert end["end_run"] == "error" and end["type"] == "StorageError" and end["yprov4ml"], end
    assert "rank_000000.journal" in end["message"] and "unwritten" in end["message"], end


def test_process_exits_normally_after_disk_full(flush_full: Outcome) -> None:
    """The training process is not crashed by a full disk: it exits with status 0.  (It used to
    segfault at exit, BUG F3, until rank files dropped HDF5's chunk cache in 9396e2c.)"""
    assert flush_full.first("exit") is not None
    assert flush_full.returncode == 0, f"exit status {flush_full.returncode}\n{flush_full.stderr[-2000:]}"


def test_merge_after_disk_full(flush_full: Outcome) -> None:
    """A merge of the run reports the rank with what was flushed (not missing)."""
    statuses = merged_statuses(merge(flush_full.run_dir))
    assert statuses[0] in ("failed", "finished", "incomplete"), statuses


def test_start_run_on_full_disk(tmp_path: Path) -> None:
    """No room for the new rank journal's first frames: start_run raises StorageError naming it;
    what was left (at most the header frame) reads as a rank that never logged anything."""
    out = _run(tmp_path, "start", 1000)
    error = out.first("error")
    assert error is not None and error["error"] == "start", out.lines
    assert error["type"] == "StorageError" and "rank_000000.journal" in error["message"], error
    assert out.first("exit") is not None and out.returncode == 0, out.stderr[-2000:]
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    try:
        data = prov4ml.load_run(run_dir)
    except prov4ml.StorageError:
        return  # the header itself did not fit: no journal was left, a clear error is fine
    assert data.problems == [] and data.series_keys() == [] and data.params() == {}
    assert [r.status for r in data.ranks] == ["running"]


def test_log_artifact_on_full_disk(tmp_path: Path) -> None:
    """Copying an artifact that does not fit raises StorageError; earlier data stays readable."""
    big = tmp_path / "big.bin"
    big.write_bytes(b"\1" * (2 * LIMIT))
    out = _run(tmp_path / "save", "artifact", LIMIT, str(big))
    error = out.first("error")
    assert error is not None and error["error"] == "artifact", out.lines
    assert error["type"] == "StorageError", error
    assert out.returncode == 0
    data = prov4ml.load_run(out.run_dir)
    assert len(data.series("loss", "training", 0)) == 100


def test_training_goes_on_when_the_disk_fills(tmp_path: Path) -> None:
    """log_metric alone (no explicit flush) past the limit: it never raises, one warning names
    the journal and the reason, end_run reports the points it could not write (some dropped:
    max_buffer_mb=1 bounds what is kept), and what was written before reads back exactly."""
    out = _run(tmp_path, "train", LIMIT)
    assert out.first("error") is None, out.lines
    logged = out.first("logged")
    assert logged is not None and logged["logged"] == 100_000, out.lines
    failures = [w for w in logged["warnings"] if "failed" in w]
    assert len(failures) == 1, logged["warnings"]
    assert "rank_000000.journal" in failures[0] and "File too large" in failures[0], failures
    end = out.first("end_run")
    assert end is not None and end["end_run"] == "error" and end["type"] == "StorageError", end
    assert "dropped" in end["message"] and "rank_000000.journal" in end["message"], end
    assert out.returncode == 0, out.stderr[-2000:]
    data = prov4ml.load_run(out.run_dir)
    assert data.problems == [] and data.params() == {"lr": 0.001}
    for metric, context, sign in (("loss", "training", 0.5), ("acc", "validation", -1.0)):
        series = data.series(metric, context, 0)
        assert 0 < len(series) < 100_000
        np.testing.assert_array_equal(series.step, np.arange(len(series)))
        np.testing.assert_array_equal(series.value, np.arange(len(series)) * sign)


def test_points_kept_in_memory_are_written_once_space_returns(tmp_path: Path) -> None:
    """The writes fail for a while (limit reached), then room comes back before end_run: the
    kept points are written at the next flush, nothing is lost, the run folds into its .h5."""
    out = _run(tmp_path, "recover", LIMIT)
    assert out.first("error") is None, out.lines
    end = out.first("end_run")
    assert end == {"end_run": "ok"}, end
    logged = out.first("logged")
    assert logged is not None and any("failed" in w for w in logged["warnings"]), out.lines
    assert sorted(p.name for p in (out.run_dir / "ranks").iterdir()) == ["rank_000000.h5"]
    data = prov4ml.load_run(out.run_dir)
    assert [r.status for r in data.ranks] == ["finished"]
    for metric, context, sign in (("loss", "training", 0.5), ("acc", "validation", -1.0)):
        series = data.series(metric, context, 0)
        np.testing.assert_array_equal(series.step, np.arange(30_000))
        np.testing.assert_array_equal(series.value, np.arange(30_000) * sign)
