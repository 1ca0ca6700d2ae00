"""end_run after MPI.Finalize() under mpiexec -n 2: no MPICH abort, every rank returns, the
document is written (through the rank files) and reads back with the prov library."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import prov
import pytest
from _mpiexec import needs_mpiexec, run_mpiexec

SCRIPT = Path(__file__).with_name("scripts") / "end_after_mpi_finalize.py"
pytestmark = needs_mpiexec


@pytest.mark.parametrize("how", ["end_run", "with"])
def test_end_run_after_mpi_finalize_writes_the_document(tmp_path: Path, how: str) -> None:
    code, out, err = run_mpiexec(2, SCRIPT, str(tmp_path), "r1", how)
    assert code == 0, err[-3000:]
    assert "after finalizing MPICH" not in err  # MPICH's abort message
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert sorted(line["rank"] for line in lines) == [0, 1]
    run_dir = tmp_path / "fin_r1"
    for line in lines:
        assert line["run_dir"] == str(run_dir)
        assert any("MPI was finalized before end_run" in m for m in line["warnings"]), line
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [(r["rank"], r["status"]) for r in summary["ranks"]] == [(0, "finished"), (1, "finished")]
    loss = next(m for m in summary["metrics"] if m["name"] == "loss")
    assert loss["count"] == 2 * 20
    document = run_dir / "prov_fin_r1.json"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        doc = prov.read(str(document), format="json")
    raw = json.loads(document.read_text())
    assert len(doc.get_records()) == sum(len(v) for k, v in raw.items() if k != "prefix")
    statuses = sorted(
        v["yprov4ml:status"]
        for v in raw["activity"].values()
        if v.get("prov:type") == {"$": "yprov4ml:RankProcess", "type": "xsd:QName"}
    )
    assert statuses == ["finished", "finished"]
