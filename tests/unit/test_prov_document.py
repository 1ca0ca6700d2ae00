"""The PROV document: the yprov4ml vocabulary of DESIGN section 5, typed literals, relations,
and a lossless read-back with the ``prov`` library (warnings are errors here)."""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path
from typing import Any

import prov
import pytest
from _merge_kit import edit_rank_file, make_run, merge
from prov.model import ProvDocument

from yprov4ml_hpc._reader import RankMeta, read_rank_meta

NS = "https://w3id.org/yprov4ml-hpc/ns#"
XSD = "http://www.w3.org/2001/XMLSchema#"


def read_back(path: Path) -> tuple[dict[str, Any], ProvDocument]:
    """The JSON and the prov library's reading of it, which must hold every record."""
    raw = json.loads(path.read_text())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # prov warns about anything it reads loosely
        doc = prov.read(str(path), format="json")
    json_records = sum(len(v) for k, v in raw.items() if k != "prefix")
    assert len(doc.get_records()) == json_records
    return raw, doc


def _of_type(raw: dict[str, Any], section: str, kind: str) -> dict[str, dict[str, Any]]:
    def types(attrs: dict[str, Any]) -> list[str]:
        value = attrs.get("prov:type", [])
        return [v["$"] for v in (value if isinstance(value, list) else [value])]

    return {k: v for k, v in raw.get(section, {}).items() if f"yprov4ml:{kind}" in types(v)}


def _relations(raw: dict[str, Any], name: str) -> list[tuple[str, str]]:
    from yprov4ml_hpc._merge._graph import RELATION_ROLES

    subject, obj = RELATION_ROLES[name]
    return [(r[subject], r[obj]) for r in raw.get(name, {}).values()]


def _with_artifacts(tmp_path: Path) -> Any:
    (tmp_path / "model.bin").write_bytes(b"weights")

    def extra(run: Any) -> None:
        run.log_param("use_amp", True)
        run.log_param("layers", [4, 4])
        run.log_dataset("mnist", list(range(10)), context="training")
        if run.rank == 0:
            run.log_model("net", tmp_path / "model.bin", context="training")
            run.log_artifact("model.bin", tmp_path / "model.bin", context="training")

    return extra


def test_layers_types_and_typed_literals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made = make_run(tmp_path, monkeypatch, world_size=3, extra=_with_artifacts(tmp_path))
    result = merge(made.run_dir)
    assert result.document.name == "prov_exp_r1.json"
    raw, _ = read_back(result.document)
    assert raw["prefix"]["yprov4ml"] == NS and raw["prefix"]["xsd"] == XSD
    assert list(raw["prefix"].values()).count(NS) == 1

    ((job_id, job),) = _of_type(raw, "activity", "Job").items()
    assert job["yprov4ml:world_size"] == {"$": "3", "type": "xsd:int"}
    assert job["prov:startTime"] < job["prov:endTime"]
    nodes = _of_type(raw, "activity", "Node")
    assert [n["yprov4ml:host"] for n in nodes.values()] and all("prov:startTime" in n for n in nodes.values())
    ranks = _of_type(raw, "activity", "RankProcess")
    assert sorted(int(r["yprov4ml:rank"]["$"]) for r in ranks.values()) == [0, 1, 2]
    for attrs in ranks.values():
        assert (
            attrs["yprov4ml:rank"]["type"] == "xsd:int" and attrs["yprov4ml:local_rank"]["type"] == "xsd:int"
        )
        assert attrs["yprov4ml:status"] == "finished"
    contexts = _of_type(raw, "activity", "Context")
    assert {c["yprov4ml:context"] for c in contexts.values()} >= {"training", "validation"}

    started = dict(_relations(raw, "wasStartedBy"))
    assert all(started[n] == job_id for n in nodes)  # job -> node
    assert all(started[r] in nodes for r in ranks)  # node -> rank
    assert all(started[c] in ranks for c in contexts)  # rank -> context (per-rank detail at 3 ranks)

    params = {p["yprov4ml:name"]: p for p in _of_type(raw, "entity", "Parameter").values()}
    assert params["lr"]["prov:value"] == {"$": "0.01", "type": "xsd:double"}
    assert params["use_amp"]["prov:value"] == {"$": "true", "type": "xsd:boolean"}
    assert params["layers"]["prov:value"] == "[4, 4]" and params["layers"]["yprov4ml:value_type"] == "list"
    seeds = [p for p in _of_type(raw, "entity", "Parameter").values() if p["yprov4ml:name"] == "seed"]
    assert sorted(p["prov:value"]["$"] for p in seeds) == ["0", "1", "2"]  # one per distinct value
    assert all((job_id, p) in _relations(raw, "used") for p in _of_type(raw, "entity", "Parameter"))

    series = _of_type(raw, "entity", "MetricSeries")
    loss = [s for s in series.values() if s["yprov4ml:name"] == "loss" and "yprov4ml:rank" not in s]
    assert len(loss) == 1 and loss[0]["yprov4ml:context"] == "training"
    assert loss[0]["yprov4ml:count"] == {"$": "90", "type": "xsd:int"}
    assert loss[0]["yprov4ml:h5path"] == "/metrics/training/loss"
    assert loss[0]["yprov4ml:min"]["type"] == "xsd:double"
    assert len(_of_type(raw, "entity", "RankFile")) == 3
    assert len(_of_type(raw, "entity", "Model")) == 1 and len(_of_type(raw, "entity", "Artifact")) == 1
    datasets = _of_type(raw, "entity", "Dataset")
    assert len(datasets) == 3
    used = _relations(raw, "used")
    assert all(any(e == d for _, e in used) for d in datasets)  # datasets are inputs
    generated = dict(_relations(raw, "wasGeneratedBy"))
    model = next(iter(_of_type(raw, "entity", "Model")))
    assert generated[model] in contexts and (model, "yprov4ml:user") in _relations(raw, "wasAttributedTo")
    agents = raw["agent"]
    assert any(a["prov:type"]["$"] == "prov:SoftwareAgent" for a in agents.values())
    assert any(a["prov:type"]["$"] == "prov:Person" for a in agents.values())
    assert {a for _, a in _relations(raw, "wasAssociatedWith")} == set(agents)
    derived = _relations(raw, "wasDerivedFrom")
    assert any(src == next(k for k, s in series.items() if s is loss[0]) for src, _ in derived)


def test_incomplete_and_missing_ranks_in_the_document(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = make_run(tmp_path, monkeypatch, world_size=3, statuses={1: "running"}, skip_ranks=(2,))
    raw, _ = read_back(merge(made.run_dir).document)
    ranks = {int(r["yprov4ml:rank"]["$"]): r for r in _of_type(raw, "activity", "RankProcess").values()}
    assert [ranks[r]["yprov4ml:status"] for r in range(3)] == ["finished", "incomplete", "missing"]
    assert ranks[1]["yprov4ml:last_flush"]["type"] == "xsd:dateTime" and "prov:endTime" not in ranks[1]
    (job,) = _of_type(raw, "activity", "Job").values()
    assert job["yprov4ml:status"] == "incomplete"


def _clone_metas(meta: RankMeta, world_size: int, per_node: int = 4) -> dict[int, RankMeta]:
    metas = {}
    for rank in range(world_size):
        attrs = dataclasses.replace(
            meta.attrs,
            rank=rank,
            world_size=world_size,
            local_rank=rank % per_node,
            host=f"node{rank // per_node:05d}",
            pid=10_000 + rank,
        )
        params = tuple(p for p in meta.params if p["name"] != "seed")
        metas[rank] = dataclasses.replace(meta, rank=rank, attrs=attrs, params=params)
    return metas


@pytest.mark.parametrize("detail", ["auto", "job"])
def test_above_16_ranks_a_rank_costs_under_1_kb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, detail: str
) -> None:
    made = make_run(tmp_path, monkeypatch, world_size=1)
    meta = read_rank_meta(made.run_dir / "ranks" / "rank_000000.h5", stats=True)
    sizes = {}
    for world_size in (64, 256):
        out = tmp_path / f"w{world_size}"
        result = merge(out, metas=_clone_metas(meta, world_size), prov_detail=detail)
        sizes[world_size] = result.document_bytes
        raw, _ = read_back(result.document)
        assert len(_of_type(raw, "activity", "RankProcess")) == world_size
        assert not [s for s in _of_type(raw, "entity", "MetricSeries").values() if "yprov4ml:rank" in s]
    per_rank = (sizes[256] - sizes[64]) / (256 - 64)
    assert per_rank <= 1024, per_rank


def test_prov_detail_auto_rank_and_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made = make_run(tmp_path, monkeypatch, world_size=2)

    def per_rank_series(**kwargs: Any) -> int:
        raw, _ = read_back(merge(made.run_dir, **kwargs).document)
        return len([s for s in _of_type(raw, "entity", "MetricSeries").values() if "yprov4ml:rank" in s])

    assert per_rank_series() == 4  # auto at 2 ranks: 2 series x 2 ranks
    assert per_rank_series(prov_detail="job") == 0
    meta = read_rank_meta(made.run_dir / "ranks" / "rank_000000.h5", stats=True)
    raw, _ = read_back(merge(tmp_path / "big", metas=_clone_metas(meta, 20), prov_detail="rank").document)
    assert len([s for s in _of_type(raw, "entity", "MetricSeries").values() if "yprov4ml:rank" in s]) == 40


def test_the_same_input_gives_the_same_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made = make_run(tmp_path, monkeypatch, world_size=3, extra=_with_artifacts(tmp_path))
    first = merge(made.run_dir).document.read_bytes()
    second = merge(made.run_dir, tmp_path / "again")
    assert second.document.read_bytes() == first


def test_energy_and_emissions_with_their_methods_on_job_and_nodes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Node "a" has codecarbon (whole machine, emissions on the assumed grid); node "b" only
    GPU + RAPL counters; the job sums them.  Read back through the prov library, typed."""
    energy = {
        0: {
            "codecarbon/energy_j": [5.0, 50.0],
            "codecarbon/emissions_kg": [0.001, 0.002],
            "gpu0/energy_j": [7.0],
        },
        1: {"gpu0/energy_j": [4.0, 11.0], "rapl/package0_energy_j": [3.0, 13.0]},
    }
    made = make_run(tmp_path, monkeypatch, world_size=2, energy=energy)
    for rank, host in ((0, "a"), (1, "b")):
        with edit_rank_file(made.run_dir / "ranks" / f"rank_{rank:06d}.h5") as handle:
            handle.attrs["host"] = host
            handle.attrs["sampler_info"] = json.dumps({"carbon_country_iso_code": "FRA"})
            handle.attrs["energy_methods"] = json.dumps(
                {
                    "gpu0/energy_j": "nvml_energy_counter",
                    "rapl/package0_energy_j": "rapl",
                    "codecarbon/energy_j": "codecarbon_estimate",
                    "codecarbon/emissions_kg": "codecarbon_estimate",
                }
            )
    result = merge(made.run_dir)
    _, doc = read_back(result.document)

    def attrs_of(kind: str) -> dict[str, dict[str, Any]]:
        out = {}
        for record in doc.get_records():
            types = {str(t) for t in record.get_attribute("prov:type")}
            if f"yprov4ml:{kind}" in types:
                out[str(record.identifier)] = {str(k): v for k, v in record.attributes}
        return out

    def one(attrs: dict[str, Any], name: str) -> Any:
        return attrs[f"yprov4ml:{name}"]

    nodes = {str(a["yprov4ml:host"]): a for a in attrs_of("Node").values()}
    assert set(nodes) == {"a", "b"}
    a, b = nodes["a"], nodes["b"]
    for attrs in (a, b):  # typed doubles, not strings
        assert isinstance(one(attrs, "energy_j"), float)
    assert one(a, "energy_j") == 50.0 and one(a, "energy_method") == "codecarbon_estimate"
    assert one(a, "emissions_kg") == pytest.approx(0.002)
    assert one(a, "emissions_method") == "codecarbon_estimate (grid: FRA)"
    assert one(b, "energy_j") == 11.0 + 13.0
    assert one(b, "energy_method") == "nvml_energy_counter + rapl"
    assert "yprov4ml:emissions_kg" not in b and "yprov4ml:emissions_method" not in b
    (job,) = attrs_of("Job").values()
    assert one(job, "energy_j") == 50.0 + 24.0 == result.summary["energy"]["total_j"]
    assert "codecarbon_estimate" in one(job, "energy_method") and "rapl" in one(job, "energy_method")
    assert one(job, "emissions_kg") == pytest.approx(result.summary["energy"]["emissions_kg"])
    assert "grid: FRA" in one(job, "emissions_method")
    raw = json.loads(result.document.read_text())
    job_raw = next(v for k, v in raw["activity"].items() if k.endswith(":job"))
    assert job_raw["yprov4ml:energy_j"]["type"] == "xsd:double"
    assert job_raw["yprov4ml:emissions_kg"]["type"] == "xsd:double"


def test_no_energy_measured_means_no_energy_attributes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = make_run(tmp_path, monkeypatch, world_size=2)
    text = merge(made.run_dir).document.read_text()
    assert "energy_j" not in text and "emissions" not in text
