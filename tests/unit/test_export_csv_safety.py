"""CSV export of names and params that a spreadsheet would run as formulas (CSV injection)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from _merge_kit import make_run

from yprov4ml_hpc._cli import main
from yprov4ml_hpc._export import spreadsheet_safe

DDE = "=cmd|' /C calc'!A0"
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_formula_like_cells_are_neutralised_numbers_are_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def extra(run: Any) -> None:
        run.log_param(DDE, "+SUM(A1:A9)")
        run.log_param("@note", "-2+3")
        run.log_param("neg", -1.5)
        run.log_metric("=HYPERLINK(\"https://evil.example\")", -2.5, context="-ctx")
        run.log_metric("\tTAB", 1.0, context="training")

    made = make_run(tmp_path, monkeypatch, world_size=1, extra=extra, loss=lambda r, s: -1.5 - s)
    out = tmp_path / "csv"
    assert main(["export", str(made.run_dir), "--format", "csv", "-o", str(out)]) == 0
    cells = []
    for path in sorted(out.rglob("*.csv")):
        with path.open(newline="") as handle:
            cells += [(path.name, cell) for row in csv.reader(handle) for cell in row]
    risky = [(name, c) for name, c in cells if c.startswith(FORMULA_START) and not _is_number(c)]
    assert risky == [], risky
    texts = {c for _, c in cells}
    assert "'" + DDE in texts and "'=HYPERLINK(\"https://evil.example\")" in texts
    assert "'\tTAB" in texts and "'-ctx" in texts and "'@note" in texts
    # Numbers stay numbers: the negative loss values and the negative param.
    with (out / "series.csv").open(newline="") as handle:
        index = {row["name"]: row for row in csv.DictReader(handle)}
    with (out / index["loss"]["file"]).open(newline="") as handle:
        values = [float(row["value"]) for row in csv.DictReader(handle)]
    assert values[:3] == [-1.5, -2.5, -3.5]
    with (out / "params.csv").open(newline="") as handle:
        params = {row["name"]: row for row in csv.DictReader(handle)}
    assert json.loads(params["neg"]["value_json"]) == -1.5
    assert json.loads(params["'" + DDE]["value_json"]) == "+SUM(A1:A9)"  # JSON text: quoted, safe
    # metrics-json keeps every name exactly.
    assert main(["export", str(made.run_dir), "--format", "metrics-json"]) == 0
    data = json.loads((made.run_dir / "metrics.json").read_text())
    assert DDE in data["params"]["0"] and any(s["context"] == "-ctx" for s in data["series"])


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "+1"),
        ("-1.5e3", "-1.5e3"),
        ("-inf", "-inf"),
        ("-x", "'-x"),
        ("@SUM(1)", "'@SUM(1)"),
        ("\r=1", "'\r=1"),
        ("plain", "plain"),
        ("", ""),
        (-3, -3),
    ],
)
def test_spreadsheet_safe(cell: Any, expected: Any) -> None:
    assert spreadsheet_safe(cell) == expected
