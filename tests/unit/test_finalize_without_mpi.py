"""Finalize without MPI (torchrun, srun without mpi4py): rank 0 polls the rank files.

At 10^4 ranks a poll must not open 10^4 HDF5 files: a rank's ``.h5`` exists only once the rank
has closed (the fold renames it into place), so the folder listing says so; only journals
(ranks still running, or SIGTERMed and not folded) are opened for their status.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import yprov4ml_hpc._reader as reader
from yprov4ml_hpc import _finalize
from yprov4ml_hpc._run import Run


def _rank(save_dir: Path, rank: int) -> Run:
    run = Run("poll", provenance_save_dir=save_dir, run_id="job", rank=rank, flush_interval_s=0,
              install_signal_handlers=False, carbon=False, system_metrics_interval_s=0)
    run.log_metric("loss", 1.0 / (rank + 1), step=0)
    return run


def test_a_poll_opens_only_the_journals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "6")
    runs = [_rank(tmp_path, rank) for rank in range(5)]  # rank 5 never starts
    runs[1].close("finished", "test")
    runs[2].close("failed", "test")
    runs[3].close("killed", "test")
    opened: list[Path] = []
    read_rank_attrs = reader.read_rank_attrs

    def spy(path: Path) -> object:
        opened.append(Path(path))
        return read_rank_attrs(path)

    monkeypatch.setattr(reader, "read_rank_attrs", spy)
    assert _finalize._still_running(runs[0], {1, 2, 3, 4, 5}) == {4, 5}
    assert [p.name for p in opened] == ["rank_000004.journal"]  # closed ranks: listing only

    opened.clear()
    runs[4].close("killed", "SIGTERM", fold=False)  # what SIGTERM leaves: a journal saying killed
    assert _finalize._still_running(runs[0], {4, 5}) == {5}
    assert [p.name for p in opened] == ["rank_000004.journal"]
    runs[0].close("finished", "test")
