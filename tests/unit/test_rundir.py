"""Run-directory agreement and exclusivity."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import yprov4ml_hpc as prov4ml
from yprov4ml_hpc import ConfigError, StorageError
from yprov4ml_hpc._launcher import LaunchInfo
from yprov4ml_hpc._rundir import create_run_dir


def _launch(rank: int = 0, size: int = 1, job: str | None = None) -> LaunchInfo:
    return LaunchInfo(rank, size, 0, 1, "host", "torchrun" if size > 1 else "singleton", job)


def test_fresh_dirs_are_distinct_even_when_created_concurrently(tmp_path: Path) -> None:
    made: list[Path] = []

    def worker() -> None:
        for _ in range(20):
            made.append(create_run_dir(tmp_path, "exp", None, _launch())[1])

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) == 80 == len(set(made)) == len(list(tmp_path.iterdir()))
    assert all((p / "ranks").is_dir() and (p / "artifacts").is_dir() for p in made)


def test_explicit_run_id_is_never_reused(tmp_path: Path) -> None:
    run_id, path = create_run_dir(tmp_path, "exp", "r1", _launch())
    assert (run_id, path.name) == ("r1", "exp_r1")
    with pytest.raises(ConfigError, match="already exists"):
        create_run_dir(tmp_path, "exp", "r1", _launch())


def test_ranks_without_mpi_agree_through_the_job_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from yprov4ml_hpc import _rundir

    dirs = set()
    for rank in range(4):  # each rank is its own process: its own per-process run counter
        monkeypatch.setattr(_rundir, "_launcher_runs_started", {})
        dirs.add(create_run_dir(tmp_path, "exp", None, _launch(rank, 4, "job7"))[1])
    assert [d.name for d in dirs] == ["exp_job7"]
    # A second run in the same processes gets a second directory, again the same on all ranks.
    second = create_run_dir(tmp_path, "exp", None, _launch(0, 4, "job7"))[1]
    assert second.name == "exp_job7-2"


def test_ranks_without_mpi_or_job_id_need_a_run_id(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="run_id"):
        create_run_dir(tmp_path, "exp", None, _launch(1, 4, None))


@pytest.mark.parametrize("bad", ["../x", "a/b", "", ".", "x" * 200, "a b"])
def test_unsafe_run_ids_and_experiment_names_are_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ConfigError, match="directory name"):
        create_run_dir(tmp_path, "exp", bad, _launch())
    with pytest.raises(ConfigError, match="directory name"):
        prov4ml.start_run(bad, provenance_save_dir=tmp_path)
    assert list(tmp_path.iterdir()) == [] or all(p.name.startswith("exp") for p in tmp_path.iterdir())


def test_unwritable_save_dir_fails_at_start_run(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StorageError, match="provenance_save_dir"):
        prov4ml.start_run("exp", provenance_save_dir=blocker / "sub")
    assert prov4ml.active_run() is None


def test_a_launcher_job_id_names_the_directory_and_never_collides(tmp_path: Path) -> None:
    launch = LaunchInfo(0, 1, 0, 1, "host", "singleton", "4242.0")
    names = [create_run_dir(tmp_path, "exp", None, launch)[1].name for _ in range(3)]
    assert names == ["exp_4242.0", "exp_4242.0-2", "exp_4242.0-3"]
