"""Unwritable or vanished save directories, and rank files deleted or truncated before a merge.

Tests run as root, and chmod does not stop root: an unwritable save directory is made by
putting it under a regular file (ENOTDIR), and a vanished one by deleting it mid-run.

What may be lost:
- unwritable save directory: nothing is written; start_run raises StorageError naming it.
- run directory, ranks/ folder or rank file deleted mid-run: what was in the deleted file
  (the process cannot know better); the loss must be *reported* (StorageError at the next
  write or at end_run), and nothing is re-created half-way (no artifacts/ without ranks/).
- a rank file deleted before merge: that rank (``missing``); truncated: that rank (reported
  by file name, the others merged); all rank files gone: a one-line error, no traceback.
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from faults_checks import series_lengths
from faults_harness import build_run, cli, merge, merged_statuses, require_command

import yprov4ml_hpc as prov4ml

QUIET = {"flush_interval_s": 0, "system_metrics_interval_s": 0, "install_signal_handlers": False}


# --- unwritable save directory ---------------------------------------------------------------------
@pytest.mark.parametrize("where", ["under_a_file", "is_a_file", "deep_under_a_file"])
def test_unwritable_save_dir(tmp_path: Path, where: str) -> None:
    """start_run raises StorageError naming the directory; nothing is created anywhere."""
    blocker = tmp_path / "blocker"
    blocker.write_text("a regular file")
    save = {"under_a_file": blocker / "prov", "is_a_file": blocker,
            "deep_under_a_file": blocker / "a" / "b"}[where]
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(prov4ml.StorageError, match=str(save)):
        prov4ml.start_run("ro", provenance_save_dir=save, **QUIET)
    assert prov4ml.active_run() is None
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


# --- deleted while running --------------------------------------------------------------------------
def _delete_run_dir(run: prov4ml.Run) -> None:
    shutil.rmtree(run.run_dir)


def _delete_ranks_dir(run: prov4ml.Run) -> None:
    shutil.rmtree(run.run_dir / "ranks")


def _delete_rank_file(run: prov4ml.Run) -> None:
    (run.run_dir / "ranks" / "rank_000000.journal").unlink()  # a running rank writes its journal


def _delete_save_dir(run: prov4ml.Run) -> None:
    shutil.rmtree(run.run_dir.parent)


DELETIONS: dict[str, Callable[[prov4ml.Run], None]] = {
    "run_dir": _delete_run_dir,
    "ranks_dir": _delete_ranks_dir,
    "rank_file": _delete_rank_file,
    "save_dir": _delete_save_dir,
}


def _log_after_deletion(tmp_path: Path, what: str) -> tuple[prov4ml.Run, list[BaseException]]:
    """Start, flush, delete ``what``, then keep going: return every error the API raised."""
    artifact = tmp_path / "weights.bin"
    artifact.write_bytes(b"w" * 100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = prov4ml.start_run("gone", provenance_save_dir=tmp_path / "save", **QUIET)
    for step in range(100):
        prov4ml.log_metric("loss", step * 0.5, context="training", step=step)
    run.flush()
    DELETIONS[what](run)
    errors: list[BaseException] = []
    for step in range(100, 200):
        prov4ml.log_metric("loss", step * 0.5, context="training", step=step)  # no I/O: never fails
    for call in (
        run.flush,
        lambda: prov4ml.log_param("after", 1),
        lambda: prov4ml.log_artifact("weights.bin", artifact),
        prov4ml.end_run,
    ):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                call()
        except Exception as exc:  # collected and judged below
            errors.append(exc)
    if prov4ml.active_run() is not None:
        run.end("failed", "test cleanup", finalize=False)
    return run, errors


@pytest.mark.parametrize("what", sorted(DELETIONS))
def test_deleted_mid_run_raises_only_storage_errors(tmp_path: Path, what: str) -> None:
    """Whatever happens after the deletion, the API raises nothing but StorageError."""
    _, errors = _log_after_deletion(tmp_path, what)
    bad = [e for e in errors if not isinstance(e, prov4ml.StorageError)]
    assert bad == [], [f"{type(e).__name__}: {e}" for e in bad]


@pytest.mark.parametrize("what", sorted(DELETIONS))
def test_deleted_mid_run_is_reported(tmp_path: Path, what: str) -> None:
    """The loss is reported: a later flush or end_run raises StorageError naming the rank journal."""
    _, errors = _log_after_deletion(tmp_path, what)
    named = [e for e in errors if isinstance(e, prov4ml.StorageError) and "rank_000000.journal" in str(e)]
    assert named, errors


@pytest.mark.parametrize("what", ["run_dir", "save_dir"])
def test_deleted_run_dir_is_not_recreated(tmp_path: Path, what: str) -> None:
    """No write after the deletion re-creates a half run directory (artifacts without ranks)."""
    run, _ = _log_after_deletion(tmp_path, what)
    assert not run.run_dir.exists(), sorted(str(p) for p in run.run_dir.rglob("*"))


# --- deleted or truncated before merge -------------------------------------------------------------
@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_run(tmp_path_factory.mktemp("pristine"), 4, points=300)


@pytest.fixture
def run_copy(pristine: Path, tmp_path: Path) -> Path:
    target = tmp_path / pristine.name
    shutil.copytree(pristine, target)
    for derived in [*target.glob("prov_*.json"), target / "summary.json"]:
        derived.unlink(missing_ok=True)
    return target


def _rank_file(run_dir: Path, rank: int) -> Path:
    return run_dir / "ranks" / f"rank_{rank:06d}.h5"


def test_deleted_rank_file_reader(run_copy: Path) -> None:
    """A deleted rank file: that rank is missing, the others read back complete."""
    _rank_file(run_copy, 2).unlink()
    data = prov4ml.load_run(run_copy)
    assert data.world_size == 4 and data.missing_ranks == [2] and data.problems == []
    for rank in (0, 1, 3):
        assert series_lengths(data, rank) == {"loss": 300, "acc": 300}


def test_deleted_rank_file_merge(run_copy: Path) -> None:
    """...and merge reports it ``missing`` and merges the rest."""
    _rank_file(run_copy, 2).unlink()
    summary = merge(run_copy)
    assert merged_statuses(summary) == {0: "finished", 1: "finished", 2: "missing", 3: "finished"}
    counts = {(m["name"], m["context"]): m["count"] for m in summary["metrics"]}
    assert counts[("loss", "training")] == 900


@pytest.mark.parametrize("keep", [0, 100, 2048, 0.5, 0.9])
@pytest.mark.parametrize("rank", [0, 3])
def test_truncated_rank_file_reader(run_copy: Path, keep: float, rank: int) -> None:
    """A truncated rank file is reported by name (never a traceback); the others read back."""
    path = _rank_file(run_copy, rank)
    size = path.stat().st_size
    os.truncate(path, int(size * keep) if isinstance(keep, float) else keep)
    data = prov4ml.load_run(run_copy)
    assert [name for name, _ in data.problems] == [path.name]
    assert data.world_size == 4
    assert rank in data.missing_ranks
    for other in {0, 1, 2, 3} - {rank}:
        assert series_lengths(data, other) == {"loss": 300, "acc": 300}


@pytest.mark.parametrize("keep", [0, 2048, 0.5])
def test_truncated_rank_file_merge_and_info(run_copy: Path, keep: float) -> None:
    """merge names the damaged file and reports the rank missing; ``info`` names it too."""
    path = _rank_file(run_copy, 1)
    os.truncate(path, int(path.stat().st_size * keep) if isinstance(keep, float) else keep)
    summary = merge(run_copy)
    assert "rank_000001.h5" in summary["_output"]
    statuses = merged_statuses(summary)
    assert statuses[1] in ("missing", "damaged") and statuses[0] == statuses[2] == statuses[3] == "finished"
    info = cli("info", str(run_copy))
    assert info.returncode == 0 and "Traceback" not in info.stderr and "rank_000001.h5" in info.stdout


def test_every_rank_file_gone(run_copy: Path) -> None:
    """No rank file left: the reader raises StorageError; merge/info fail with one line, exit 2."""
    for path in (run_copy / "ranks").iterdir():
        path.unlink()
    with pytest.raises(prov4ml.StorageError):
        prov4ml.load_run(run_copy)
    for command in ("info", "merge"):
        require_command(command)
        proc = cli(command, str(run_copy))
        assert proc.returncode == 2, (command, proc.returncode, proc.stderr)
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_every_rank_file_truncated(run_copy: Path) -> None:
    """Every rank file damaged: merge fails with one line naming the problem, no traceback."""
    for path in (run_copy / "ranks").iterdir():
        os.truncate(path, 1000)
    data = prov4ml.load_run(run_copy)
    assert len(data.problems) == 4 and data.ranks == []
    require_command("merge")
    proc = cli("merge", str(run_copy))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "rank_000000.h5" in proc.stderr


def test_series_of_other_ranks_survive_a_damaged_neighbour(run_copy: Path) -> None:
    """Damage to one file never changes what the other files read back (values, not only counts)."""
    with open(_rank_file(run_copy, 1), "r+b") as handle:
        handle.seek(0)
        handle.write(b"\0" * 512)  # wipe the superblock
    data = prov4ml.load_run(run_copy)
    assert [name for name, _ in data.problems] == ["rank_000001.h5"]
    series = data.series("loss", "training", 3)
    np.testing.assert_array_equal(series.value, 3e6 + np.arange(300) * 0.5)
