"""Truncated, corrupt, foreign and missing rank files: reported by name, merged around."""

from __future__ import annotations

from pathlib import Path

import pytest
from _merge_kit import edit_rank_file, make_run, merge, summary_of

from yprov4ml_hpc import DamagedRunError, MergeError, StorageError
from yprov4ml_hpc._cli import main


def _damage(run_dir: Path) -> None:
    ranks = run_dir / "ranks"
    data = (ranks / "rank_000001.h5").read_bytes()
    (ranks / "rank_000001.h5").write_bytes(data[: len(data) // 3])  # truncated
    (ranks / "rank_000002.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"garbage" * 500)  # corrupt
    with edit_rank_file(ranks / "rank_000003.h5") as handle:
        handle.attrs["schema_version"] = 99  # written by a newer yprov4ml_hpc


def test_damaged_files_are_named_and_merged_around(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made = make_run(tmp_path, monkeypatch, world_size=6, skip_ranks=(5,))
    _damage(made.run_dir)
    result = merge(made.run_dir)
    problems = {p["file"]: p["reason"] for p in summary_of(made.run_dir)["problems"]}
    assert set(problems) == {"rank_000001.h5", "rank_000002.h5", "rank_000003.h5"}
    assert "schema version 99" in problems["rank_000003.h5"]
    ranks = {r["rank"]: r for r in result.summary["ranks"]}
    assert [ranks[r]["status"] for r in range(6)] == [
        "finished",
        "missing",
        "missing",
        "missing",
        "finished",
        "missing",
    ]
    assert "problem" in ranks[2] and "problem" not in ranks[5]
    loss = next(m for m in result.summary["metrics"] if m["name"] == "loss")
    assert loss["count"] == 2 * 30  # ranks 0 and 4 only
    document = result.document.read_text()
    assert "rank_000002.h5" in document and "yprov4ml:problem" in document


def test_strict_makes_damage_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made = make_run(tmp_path, monkeypatch, world_size=4)
    _damage(made.run_dir)
    with pytest.raises(DamagedRunError, match=r"rank_000001\.h5"):
        merge(made.run_dir, strict=True)
    assert not (made.run_dir / "summary.json").exists()


def test_cli_strict_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    made = make_run(tmp_path, monkeypatch, world_size=4)
    _damage(made.run_dir)
    assert main(["merge", "--strict", str(made.run_dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "rank_000001.h5" in err and "--strict" in err
    assert main(["merge", str(made.run_dir)]) == 0
    out = capsys.readouterr().out
    assert "damaged: rank_000001.h5" in out and "damaged: rank_000002.h5" in out
    assert "3 missing (ranks 1, 2, 3)" in out


def test_nothing_readable_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made = make_run(tmp_path, monkeypatch, world_size=1)
    (made.run_dir / "ranks" / "rank_000000.h5").write_bytes(b"not hdf5")
    with pytest.raises(MergeError, match="no readable rank file"):
        merge(made.run_dir)
    with pytest.raises(StorageError, match="not a yprov4ml_hpc run directory"):
        merge(tmp_path)


def test_strict_makes_a_missing_rank_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """world_size 5, ranks 1 and 4 never wrote a file: --strict names both and writes nothing."""
    made = make_run(tmp_path, monkeypatch, world_size=5, skip_ranks=(1, 4))
    with pytest.raises(DamagedRunError, match=r"2 of 5 ranks have no rank file \(ranks 1, 4"):
        merge(made.run_dir, strict=True)
    assert not (made.run_dir / "summary.json").exists()
    assert main(["merge", "--strict", str(made.run_dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ranks 1, 4" in err and "rank_000001.h5" in err
    assert main(["merge", str(made.run_dir)]) == 0  # without --strict: merged around them
    assert "2 missing (ranks 1, 4)" in capsys.readouterr().out


def test_strict_accepts_a_complete_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made = make_run(tmp_path, monkeypatch, world_size=3)
    result = merge(made.run_dir, strict=True)
    assert [r["status"] for r in result.summary["ranks"]] == ["finished"] * 3
