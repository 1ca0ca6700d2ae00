"""The one reader and the rank journal: scan and open are the only places that know of it.

A real two-rank-shaped run directory: rank 0 ran to the end (its journal folded into
``rank_000000.h5``), rank 1 was killed (only ``rank_000001.journal``).  Every reading path
(load_run, the header ``ls`` reads, info, merge) sees both ranks the same way; a journal that
its rank folds between the scan and the open is read from the new .h5.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import yprov4ml_hpc
from yprov4ml_hpc import _journal as J
from yprov4ml_hpc._errors import DamagedRunError
from yprov4ml_hpc._fold import fold_journal
from yprov4ml_hpc._reader import load_run, open_rank_file, read_rank_meta, read_run_header, scan_rank_files


def _header(rank: int) -> dict[str, object]:
    return {
        "schema": "yprov4ml_hpc/rank", "schema_version": 1, "run_id": "jr", "experiment": "e",
        "rank": rank, "world_size": 2, "status": "running", "host": "h", "pid": 1,
        "start_ns": 1_000, "command": ["train.py"],
    }


def _write_journal(path: Path, rank: int, status: str, points: int) -> None:
    steps = np.arange(points, dtype=np.int64)
    frames = [
        J.encode_header(_header(rank)),
        J.encode_series(0, "loss", "training"),
        J.encode_points(0, steps, steps * 0.5 + rank, steps + 2_000),
        J.encode_record("params", json.dumps({"name": "lr", "value": 0.1})),
        J.encode_attrs({"status": status, "end_ns": 9_000}),
    ]
    path.write_bytes(b"".join(frames))


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    root = tmp_path / "e_jr"
    ranks = root / "ranks"
    ranks.mkdir(parents=True)
    _write_journal(ranks / "rank_000000.journal", 0, "finished", 50)
    fold_journal(ranks / "rank_000000.journal")  # rank 0 closed: its .h5, no journal
    _write_journal(ranks / "rank_000001.journal", 1, "killed", 30)  # rank 1 died: journal only
    return root


def test_a_killed_rank_reads_through_its_journal_beside_a_folded_one(run_dir: Path) -> None:
    files = scan_rank_files(run_dir / "ranks")
    assert {r: p.name for r, p in files.by_rank.items()} == {0: "rank_000000.h5", 1: "rank_000001.journal"}
    run = load_run(run_dir, strict=True)
    assert [(r.rank, r.status) for r in run.ranks] == [(0, "finished"), (1, "killed")]
    assert run.world_size == 2 and run.missing_ranks == [] and run.problems == []
    np.testing.assert_array_equal(run.series("loss", "training", 1).value, np.arange(30) * 0.5 + 1)
    assert run.params(1) == {"lr": 0.1}
    assert run.meta(1).file_bytes == (run_dir / "ranks" / "rank_000001.journal").stat().st_size
    header = read_run_header(run_dir)
    assert {r: a.status for r, a in header.ranks.items()} == {0: "finished", 1: "killed"}


def test_info_and_merge_see_the_journal_rank(run_dir: Path) -> None:
    info = subprocess.run(
        [sys.executable, "-m", "yprov4ml_hpc", "info", str(run_dir), "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert info.returncode == 0, info.stderr
    described = json.loads(info.stdout)
    assert described["world_size"] == 2 and described.get("damaged_ranks", []) == []
    yprov4ml_hpc.merge([run_dir])
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["world_size"] == 2
    ranks = {r["rank"]: (r["status"], r["steps"]) for r in summary["ranks"]}
    assert ranks == {0: ("finished", 50), 1: ("killed", 30)}
    assert [(m["name"], m["count"], m["ranks"]) for m in summary["metrics"]] == [("loss", 80, 2)]
    assert summary["problems"] == []
    # In place, the killed rank's journal is folded after the build (the reader's scan found it).
    assert sorted(p.name for p in (run_dir / "ranks").iterdir()) == ["rank_000000.h5", "rank_000001.h5"]
    again = load_run(run_dir, strict=True)
    assert [(r.rank, r.status) for r in again.ranks] == [(0, "finished"), (1, "killed")]
    np.testing.assert_array_equal(again.series("loss", "training", 1).step, np.arange(30))


def test_merge_never_opens_a_planted_fifo_journal(run_dir: Path) -> None:
    """A FIFO named like a journal would block any open forever: reported, never opened."""
    os.mkfifo(run_dir / "ranks" / "rank_000002.journal")
    result = yprov4ml_hpc.merge([run_dir])
    assert any(m.startswith("rank_000002.journal: not folded (not a regular file)") for m in result.messages)
    problems = json.loads((run_dir / "summary.json").read_text())["problems"]
    assert [p["file"] for p in problems] == ["rank_000002.journal"], problems


def test_a_journal_folded_after_the_scan_is_read_from_its_h5(tmp_path: Path) -> None:
    """The race of a live read: scan lists the journal, its rank folds it, then the read."""
    journal = tmp_path / "rank_000000.journal"
    _write_journal(journal, 0, "running", 20)
    listed = scan_rank_files(tmp_path).by_rank[0]
    assert listed == journal
    target = fold_journal(journal)
    assert not journal.exists()
    with open_rank_file(listed) as handle:
        assert handle.attrs["status"] == "running" and handle["metrics/training/loss/value"].shape == (20,)
    meta = read_rank_meta(listed)
    assert meta.path == target and meta.file_bytes == target.stat().st_size
    assert [s.count for s in meta.series] == [20]


def test_the_collectors_journal_name_stands_for_its_rank(tmp_path: Path) -> None:
    _write_journal(tmp_path / "rank_000001.journal", 1, "running", 5)
    _write_journal(tmp_path / "rank_0000001.journal", 1, "running", 5)
    files = scan_rank_files(tmp_path)
    assert files.by_rank[1].name == "rank_000001.journal"
    assert files.duplicates == (("rank_0000001.journal", 1, "rank_000001.journal"),)


def test_a_symlinked_or_garbage_journal_is_damaged_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside.journal"
    _write_journal(outside, 0, "running", 5)
    ranks = tmp_path / "ranks"
    ranks.mkdir()
    os.symlink(outside, ranks / "rank_000000.journal")
    (ranks / "rank_000001.journal").write_bytes(b"garbage, no frames\n")
    with pytest.raises(DamagedRunError, match=r"rank_000000\.journal: not a regular file"):
        read_rank_meta(ranks / "rank_000000.journal")
    run = load_run(tmp_path)
    assert sorted(run.damaged) == [0, 1] and run.ranks == []
    assert "header" in run.damaged[1]
