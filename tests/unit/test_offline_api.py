"""The offline side from Python: ``yprov4ml_hpc.merge`` and ``yprov4ml_hpc.export``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from _merge_kit import make_run, mark_running
from test_prov_document import read_back

import yprov4ml_hpc


def test_merge_writes_what_the_cli_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made = make_run(tmp_path, monkeypatch, world_size=3)
    mark_running(made.run_dir / "ranks" / "rank_000002.h5")  # as a SIGKILL leaves it
    result = yprov4ml_hpc.merge(made.run_dir, create_graph=True)
    assert result.document == made.run_dir / "prov_exp_r1.json" and result.graph_dot is not None
    summary = json.loads(result.summary_path.read_text())
    assert summary == result.summary and summary["generated_by"] == "merge"
    assert [r["status"] for r in summary["ranks"]] == ["finished", "finished", "incomplete"]
    read_back(result.document)
    cli = tmp_path / "cli"
    proc = subprocess.run(
        [sys.executable, "-m", "yprov4ml_hpc", "merge", str(made.run_dir), "-o", str(cli)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert (cli / result.document.name).read_bytes() == result.document.read_bytes()


def test_merge_refuses_bad_options(tmp_path: Path) -> None:
    with pytest.raises(yprov4ml_hpc.ConfigError, match="workers"):
        yprov4ml_hpc.merge(tmp_path, workers=0)
    with pytest.raises(ValueError, match="prov_detail"):
        yprov4ml_hpc.merge(tmp_path, prov_detail="all")
    with pytest.raises(yprov4ml_hpc.StorageError, match="not a yprov4ml_hpc run directory"):
        yprov4ml_hpc.merge(tmp_path)
    with pytest.raises(yprov4ml_hpc.StorageError):
        yprov4ml_hpc.merge(tmp_path / "mistyped")
    assert not (tmp_path / "mistyped").exists()  # a failed merge creates nothing


def test_export_formats(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made = make_run(tmp_path, monkeypatch, world_size=2)
    yprov4ml_hpc.merge(made.run_dir)
    provn = yprov4ml_hpc.export(made.run_dir, "provn")
    assert provn == made.run_dir / "prov_exp_r1.provn" and provn.read_text().startswith("document")
    metrics = json.loads(yprov4ml_hpc.export(made.run_dir, "metrics-json", tmp_path / "out").read_text())
    assert metrics["run_id"] == "r1"
    folder = yprov4ml_hpc.export(made.run_dir, "csv")
    assert (folder / "series.csv").is_file() and (folder / "params.csv").is_file()
    with pytest.raises(yprov4ml_hpc.ConfigError, match="unknown export format"):
        yprov4ml_hpc.export(made.run_dir, "pdf")


def test_the_offline_api_imports_nothing_heavy() -> None:
    code = (
        "import sys, yprov4ml_hpc; yprov4ml_hpc.merge; yprov4ml_hpc.export; "
        "print([m for m in ('networkx', 'prov', 'mpi4py', 'matplotlib') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
