"""One reader: info, ls, summary and merge describe a damaged run directory the same way.

The run directories are crafted from a real one-rank run: a garbage file that claims rank 3, a
copy of rank 0 under a second name (``rank_0000000.h5``), a missing rank 1.  Every command must
report the same world size, the same missing/damaged ranks and the duplicate.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _merge_kit import make_run

import yprov4ml_hpc
from yprov4ml_hpc._errors import DamagedRunError
from yprov4ml_hpc._reader import load_run, read_run_header, scan_rank_files


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "yprov4ml_hpc", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def crafted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Good rank 0 (world size 1 by its attributes) + garbage rank 3 + a copy of rank 0."""
    made = make_run(tmp_path / "prov", monkeypatch, world_size=1)
    ranks = made.run_dir / "ranks"
    (ranks / "rank_000003.h5").write_bytes(b"not an HDF5 file at all\n" * 10)
    shutil.copyfile(ranks / "rank_000000.h5", ranks / "rank_0000000.h5")
    return made.run_dir


def test_the_scan_has_one_rule_for_two_names_of_one_rank(crafted: Path) -> None:
    files = scan_rank_files(crafted / "ranks")
    assert sorted(files.by_rank) == [0, 3]
    assert files.by_rank[0].name == "rank_000000.h5"  # the collector's own name stands for the rank
    assert files.duplicates == (("rank_0000000.h5", 0, "rank_000000.h5"),)


def test_load_run_counts_damaged_missing_and_duplicate(crafted: Path) -> None:
    run = load_run(crafted)
    assert run.world_size == 4  # rank_000003.h5's name says the job had a rank 3
    assert [r.rank for r in run.ranks] == [0]
    assert run.missing_ranks == [1, 2, 3]
    assert sorted(run.damaged) == [3]
    assert sorted(name for name, _ in run.problems) == ["rank_0000000.h5", "rank_000003.h5"]
    with pytest.raises(DamagedRunError, match=r"rank_0000000\.h5"):
        load_run(crafted, strict=True)
    header = read_run_header(crafted)
    assert (header.world_size, header.missing_ranks, sorted(header.damaged)) == (4, [1, 2, 3], [3])
    assert header.problems == run.problems


def test_info_ls_summary_and_merge_agree(crafted: Path) -> None:
    info = json.loads(_cli("info", "--json", str(crafted)).stdout)
    ls_before = json.loads(_cli("ls", "--json", str(crafted)).stdout)["runs"][0]
    computed = _cli("summary", "--json", str(crafted))
    assert computed.returncode == 0, computed.stderr
    summary_before = json.loads(computed.stdout)
    merged = _cli("merge", str(crafted))
    assert merged.returncode == 0, merged.stderr
    summary = json.loads((crafted / "summary.json").read_text())
    ls_after = json.loads(_cli("ls", "--json", str(crafted)).stdout)["runs"][0]

    assert info["world_size"] == ls_before["world_size"] == summary["world_size"] == 4
    assert ls_after["world_size"] == 4
    assert info["missing_ranks"] == [1, 2, 3] and info["damaged_ranks"] == [3]
    statuses = {r["rank"]: r["status"] for r in summary["ranks"]}
    assert statuses == {0: "finished", 1: "missing", 2: "missing", 3: "missing"}
    assert "problem" in summary["ranks"][3] and "problem" not in summary["ranks"][1]
    assert ls_before["status_counts"] == {"finished": 1, "damaged": 1, "missing": 2}
    assert ls_after["status_counts"] == {"finished": 1, "missing": 3}
    assert ls_before["rank_files"] == 2  # the duplicate is not a rank
    # The computed summary is the one merge writes.
    body = summary_before.get("summary", summary_before)
    assert body["world_size"] == 4
    assert [r["status"] for r in body["ranks"]] == [r["status"] for r in summary["ranks"]]
    # Both problems are named by info and by merge's output.
    assert {p["file"] for p in info["problems"]} == {"rank_0000000.h5", "rank_000003.h5"}
    assert "rank_0000000.h5" in merged.stdout + merged.stderr
    assert "rank_000003.h5" in merged.stdout + merged.stderr
    # And the report.
    out = crafted.parent / "report.html"
    report = _cli("report", str(crafted), "-o", str(out), "--no-figures")
    assert report.returncode == 0, report.stderr
    html = out.read_text()
    assert "4 ranks on 1 node(s)" in html
    assert "rank_0000000.h5" in html and "rank_000003.h5" in html


def test_public_reader_api_of_design_section_4(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made = make_run(tmp_path, monkeypatch, world_size=2)
    run = yprov4ml_hpc.load_run(made.run_dir)
    assert (run.world_size, [r.rank for r in run.ranks]) == (2, [0, 1])
    assert run.ranks[1].status == "finished" and run.ranks[1].pid > 0
    assert run.params(rank=0)["lr"] == pytest.approx(0.01)
    keys = run.series_keys()
    assert ("loss", "training", 1) in keys
    s = run.series("loss", "training", 1)
    assert s.value.tolist() == made.logged[("loss", "training", 1)]
    assert s.step.dtype.name == "int64" and s.time_ns.dtype.name == "int64"
    meta = run.meta(0)
    assert meta.attrs.world_size == 2 and isinstance(meta.attrs.versions, dict)
    assert meta.series[0].stats is None  # statistics only when asked (merge)
    assert load_run(made.run_dir, stats=True).meta(0).series[0].stats is not None
