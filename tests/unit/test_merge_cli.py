"""``yprov4ml-hpc merge/export/graph``: several runs, consolidation, exports that parse."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import h5py
import numpy as np
import prov
import pytest
import rdflib
from _merge_kit import make_run, merge
from test_prov_document import _of_type, _relations, read_back

from yprov4ml_hpc._cli import main

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:rdflib")


def test_merge_states_each_rank_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    made = make_run(
        tmp_path,
        monkeypatch,
        world_size=5,
        statuses={1: "failed", 2: "killed", 3: "running"},
        skip_ranks=(4,),
    )
    assert main(["merge", str(made.run_dir)]) == 0
    out = capsys.readouterr().out
    first = out.splitlines()[0]
    assert first.startswith("exp_r1: 5 ranks:")
    for part in (
        "1 finished",
        "1 failed (ranks 1)",
        "1 killed (ranks 2)",
        "1 incomplete (ranks 3)",
        "1 missing (ranks 4)",
    ):
        assert part in first
    assert (made.run_dir / "prov_exp_r1.json").is_file() and (made.run_dir / "summary.json").is_file()


def test_several_runs_are_chained_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    first = make_run(tmp_path, monkeypatch, world_size=2, run_id="job1")
    second = make_run(tmp_path, monkeypatch, world_size=3, run_id="job2", loss=lambda r, s: -1.0 - s)
    out = tmp_path / "merged"
    assert main(["merge", str(first.run_dir), str(second.run_dir), "-o", str(out)]) == 0
    document = out / "prov_exp_job1..job2.json"
    raw, _ = read_back(document)
    jobs = _of_type(raw, "activity", "Job")
    assert set(jobs) == {"run1:job", "run2:job"}
    assert _relations(raw, "wasInformedBy") == [("run2:job", "run1:job")]
    assert len(_of_type(raw, "activity", "RankProcess")) == 5
    summary = json.loads((out / "summary.json").read_text())
    assert [r["run_id"] for r in summary["runs"]] == ["job1", "job2"]
    assert [(r["run_id"], r["rank"]) for r in summary["ranks"]] == [
        ("job1", 0),
        ("job1", 1),
        ("job2", 0),
        ("job2", 1),
        ("job2", 2),
    ]
    loss = next(m for m in summary["metrics"] if m["name"] == "loss")
    assert loss["count"] == 5 * 30 and loss["min"] == -30.0 and loss["min_run_id"] == "job2"
    assert loss["last"] == -30.0  # the last run's ranks only
    capsys.readouterr()
    assert main(["merge", str(first.run_dir), str(second.run_dir)]) == 2  # where to write?
    assert "-o OUT_DIR" in capsys.readouterr().err
    assert main(["merge", str(first.run_dir), str(first.run_dir), "-o", str(out)]) == 2


def test_consolidate_holds_every_series_for_plain_h5py(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = make_run(tmp_path, monkeypatch, world_size=3, statuses={2: "running"})
    assert main(["merge", "--consolidate", str(made.run_dir)]) == 0
    with h5py.File(made.run_dir / "consolidated.h5", "r") as handle:
        run = handle["exp_r1"]
        assert run.attrs["world_size"] == 3
        for (name, context, rank), values in made.logged.items():
            group = run[f"rank_{rank:06d}/metrics/{context}/{name}"]
            assert group.attrs["name"] == name
            np.testing.assert_array_equal(group["value"][()], values)
            assert group["step"].shape == group["time_ns"].shape == (len(values),)
        assert json.loads(run["rank_000000/params"][0])["name"] == "lr"
        assert run["rank_000002"].attrs["status"] == "running"


def test_exports_parse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made = make_run(tmp_path, monkeypatch, world_size=2)
    merge(made.run_dir)
    _, doc = read_back(made.run_dir / "prov_exp_r1.json")
    records = len(doc.get_records())
    assert main(["export", str(made.run_dir), "--format", "provn"]) == 0
    provn = (made.run_dir / "prov_exp_r1.provn").read_text()
    assert provn.startswith("document") and provn.rstrip().endswith("endDocument")
    assert "yprov4ml:RankProcess" in provn and "yprov4ml:rank=1," in provn
    assert main(["export", str(made.run_dir), "--format", "rdf"]) == 0
    graph = rdflib.Graph().parse(made.run_dir / "prov_exp_r1.ttl", format="turtle")
    ns = rdflib.Namespace("https://w3id.org/yprov4ml-hpc/ns#")
    assert len(list(graph.subjects(rdflib.RDF.type, ns.RankProcess))) == 2
    with_rdf = prov.read(str(made.run_dir / "prov_exp_r1.ttl"), format="rdf", rdf_format="turtle")
    assert len(with_rdf.get_records()) == records  # PROV-O holds every record too
    out = tmp_path / "elsewhere"
    out.mkdir()
    assert main(["export", str(made.run_dir), "--format", "jsonld", "-o", str(out)]) == 0
    jsonld = rdflib.Graph().parse(out / "prov_exp_r1.jsonld", format="json-ld")
    assert len(jsonld) == len(graph)
    pytest.importorskip("lxml", reason="PROV-XML needs prov[xml] (lxml)")
    assert main(["export", str(made.run_dir), "--format", "xml", "-o", str(tmp_path / "doc.xml")]) == 0
    from_xml = prov.read(str(tmp_path / "doc.xml"), format="xml")
    assert len(from_xml.get_records()) == records


def test_metrics_exports_keep_values_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made = make_run(
        tmp_path, monkeypatch, world_size=2, loss=lambda r, s: [math.nan, math.inf, 0.1 + r][s % 3], steps=6
    )
    assert main(["export", str(made.run_dir), "--format", "metrics-json"]) == 0
    data = json.loads((made.run_dir / "metrics.json").read_text())
    series = {(s["name"], s["context"], s["rank"]): s for s in data["series"]}
    for key, values in made.logged.items():
        got = [float(v) for v in series[key]["value"]]
        np.testing.assert_array_equal(got, values)  # NaN == NaN for assert_array_equal
    assert data["params"]["1"] == {"lr": 0.01, "seed": 1}
    assert main(["export", str(made.run_dir), "--format", "csv", "-o", str(tmp_path / "csv")]) == 0
    index = list(csv.DictReader(io.StringIO((tmp_path / "csv" / "series.csv").read_text())))
    index = [row for row in index if (row["name"], row["context"], int(row["rank"])) in made.logged]
    assert len(index) == len(made.logged)  # (the samplers' system series are there too)
    for row in index:
        rows = list(csv.DictReader((tmp_path / "csv" / row["file"]).open()))
        values = [float(r["value"]) for r in rows]
        np.testing.assert_array_equal(values, made.logged[(row["name"], row["context"], int(row["rank"]))])


def test_export_errors_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    made = make_run(tmp_path, monkeypatch, world_size=1)
    assert main(["export", str(made.run_dir), "--format", "provn"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "yprov4ml-hpc merge" in err


def test_graph_dot_and_svg_never_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    made = make_run(tmp_path, monkeypatch, world_size=2)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no Graphviz here, whatever the machine has
    result = merge(made.run_dir, create_graph=True, create_svg=True)
    dot = (made.run_dir / "graph.dot").read_text()
    assert dot.startswith("digraph prov {") and '"run:rank1" -> "run:node0"' in dot
    assert result.graph_svg is None and result.messages == [
        "graph.svg not written: Graphviz `dot` is not installed (apt-get install graphviz)"
    ]
    assert main(["graph", str(made.run_dir), "--svg", "-o", str(tmp_path / "g")]) == 0
    assert (tmp_path / "g" / "graph.dot").is_file()
    assert "apt-get install graphviz" in capsys.readouterr().err
