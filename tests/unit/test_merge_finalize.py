"""end_run writes the job's document and summary; a later merge of the same files agrees."""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
from test_prov_document import _of_type, read_back

import yprov4ml_hpc as prov4ml
from yprov4ml_hpc._cli import main


def comparable(summary: dict[str, Any]) -> dict[str, Any]:
    """What an online finalize and an offline merge must agree on (all but three fields)."""
    out = json.loads(json.dumps(summary))
    for key in ("generated_by", "generated_at"):
        out.pop(key)
    out["collector"].pop("finalize_time_s")
    return out


def _train(tmp_path: Path, **end: Any) -> Path:
    prov4ml.start_run("fin", provenance_save_dir=tmp_path, flush_interval_s=0, buffer_size=8)
    prov4ml.log_param("lr", 0.5)
    for step in range(25):
        prov4ml.log_metric("loss", 1.0 / (step + 1), context=prov4ml.Context.TRAINING, step=step)
    return prov4ml.end_run(**end)


def test_end_run_writes_both_files_and_merge_agrees(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = _train(tmp_path)
    document = next(run_dir.glob("prov_fin_*.json"))
    online = json.loads((run_dir / "summary.json").read_text())
    assert online["generated_by"] == "finalize" and online["ranks"][0]["status"] == "finished"
    read_back(document)
    online_bytes = document.read_bytes()
    assert main(["merge", str(run_dir), "-o", str(tmp_path / "offline")]) == 0
    offline = json.loads((tmp_path / "offline" / "summary.json").read_text())
    assert offline["generated_by"] == "merge"
    assert (tmp_path / "offline" / document.name).read_bytes() == online_bytes
    assert comparable(offline) == comparable(online)
    assert main(["merge", str(run_dir)]) == 0  # in place: the same document again
    assert document.read_bytes() == online_bytes


def test_end_run_options(tmp_path: Path) -> None:
    with pytest.raises(prov4ml.ConfigError, match="prov_detail"):
        prov4ml.end_run(prov_detail="everything")  # checked before anything is closed
    run_dir = _train(tmp_path, prov_detail="job", create_graph=True, finalize_timeout_s=1, unknown_arg=1)
    assert (run_dir / "graph.dot").is_file()
    raw, _ = read_back(next(run_dir.glob("prov_*.json")))
    assert '"yprov4ml:rank"' not in json.dumps(raw["entity"])  # no per-rank series at "job"


def test_with_block_finalizes_with_or_without_an_exception(tmp_path: Path) -> None:
    with prov4ml.start_run("ok", provenance_save_dir=tmp_path) as run:
        prov4ml.log_metric("x", 1.0)
    assert (run.run_dir / "summary.json").is_file()
    with pytest.raises(RuntimeError), prov4ml.start_run("boom", provenance_save_dir=tmp_path) as failed:
        prov4ml.log_metric("x", 2.0)
        raise RuntimeError("training crashed")
    assert failed.status == "failed" and prov4ml.active_run() is None
    summary = json.loads((failed.run_dir / "summary.json").read_text())  # a failed run is provenance too
    assert [r["status"] for r in summary["ranks"]] == ["failed"]
    raw, _ = read_back(next(failed.run_dir.glob("prov_*.json")))
    ranks = _of_type(raw, "activity", "RankProcess").values()
    assert [r["yprov4ml:status"] for r in ranks] == ["failed"]
    with prov4ml.start_run("twice", provenance_save_dir=tmp_path) as both:
        prov4ml.end_run()
        first = (both.run_dir / "summary.json").stat().st_mtime_ns
    assert (both.run_dir / "summary.json").stat().st_mtime_ns == first  # finalized once


def test_a_failed_build_warns_and_still_returns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import yprov4ml_hpc._merge._build as build_module

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(build_module, "write_prov_json", broken)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_dir = _train(tmp_path)
    assert run_dir.is_dir() and not (run_dir / "summary.json").exists()
    messages = [str(w.message) for w in caught if issubclass(w.category, prov4ml.Yprov4mlWarning)]
    assert any("disk full" in m and "yprov4ml-hpc merge" in m for m in messages)


def test_without_mpi_other_ranks_stop_waiting_when_rank_0_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from yprov4ml_hpc import Run
    from yprov4ml_hpc._finalize import FINALIZE_FAILED_FILENAME, finalize

    monkeypatch.setenv("WORLD_SIZE", "2")
    run = Run(
        "nompi",
        provenance_save_dir=tmp_path,
        run_id="j1",
        rank=1,
        carbon=False,
        install_signal_handlers=False,
        finalize_timeout_s=60,
    )
    run.close("finished", "test")
    (run.run_dir / FINALIZE_FAILED_FILENAME).write_text("OSError: disk full\n")
    started = time.monotonic()
    with pytest.warns(prov4ml.Yprov4mlWarning, match="disk full"):
        assert finalize(run) == run.run_dir
    assert time.monotonic() - started < 5  # not the 60 s timeout
