"""Record blocks write what one networkx node per record would have written, byte for byte.

Per-rank and per-node records are kept as blocks and expanded by the writer (issue 12).  Here
each block is expanded into real networkx nodes and edges, at the block's place in the node
order, and the result is written the way the writer did before blocks existed (every node in
insertion order, then ``graph.edges()``, each record through ``json``): the two documents must
be identical, for job and rank detail, missing, damaged and silently dead ranks, input and
output artifacts, and a multi-run merge.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import networkx as nx
import pytest
from _merge_kit import make_run

from yprov4ml_hpc._merge import assemble
from yprov4ml_hpc._merge._graph_base import RELATION_ROLES
from yprov4ml_hpc._merge._provjson import _ENCODER, _encode, write_prov_json

SECTIONS = ("agent", "activity", "entity", *RELATION_ROLES)


def expanded(graph: nx.MultiDiGraph) -> nx.MultiDiGraph:
    out = nx.MultiDiGraph()
    out.graph.update(graph.graph)

    def element(kind: str, ident: str, attrs: dict[str, Any]) -> None:
        out.add_node(ident, kind=kind, attrs=attrs)

    relations: list[tuple[str, str, str, str, dict[str, Any]]] = []

    def relation(rel: str, key: str, source: str, target: str, attrs: dict[str, Any]) -> None:
        relations.append((rel, key, source, target, attrs))

    blocks = 0
    for ident, data in graph.nodes(data=True):
        if "block" in data:
            blocks += 1
            data["block"].emit(element, relation)
        elif "kind" in data:
            out.add_node(ident, **data)
    assert blocks >= 2  # nodes and ranks of every run
    # Edges after every node, as the builder made them: no edge ever created its target.
    for rel, key, source, target, attrs in relations:
        out.add_edge(source, target, key=key, rel=rel, attrs=attrs)
    for source, target, key, data in graph.edges(keys=True, data=True):
        out.add_edge(source, target, key=key, **data)
    return out


def written_the_old_way(graph: nx.MultiDiGraph) -> str:
    sections: dict[str, list[str]] = {name: [] for name in SECTIONS}
    for ident, data in graph.nodes(data=True):
        sections[data["kind"]].append(f"{_ENCODER.encode(ident)}:{_ENCODER.encode(_encode(data['attrs']))}")
    for source, target, key, data in graph.edges(keys=True, data=True):
        subject, obj = RELATION_ROLES[data["rel"]]
        record = {subject: source, obj: target, **_encode(data["attrs"])}
        sections[data["rel"]].append(f"{_ENCODER.encode(key)}:{_ENCODER.encode(record)}")
    parts = ['{"prefix":' + json.dumps(graph.graph["namespaces"], separators=(",", ":"))]
    parts += [f'"{name}":{{\n' + ",\n".join(records) + "\n}" for name, records in sections.items() if records]
    return ",\n".join(parts) + "}\n"


def _artifacts(tmp_path: Path) -> Any:
    def extra(run: Any) -> None:
        source = tmp_path / f"in{run.rank}.txt"
        source.write_text("x" * (run.rank + 1))
        run.log_artifact("in.txt", source, is_input=True)
        for version in range(2):
            model = tmp_path / f"model{run.rank}.bin"
            model.write_text(f"v{version}")
            run.log_model("net", model)

    return extra


@pytest.mark.parametrize("prov_detail", ["job", "rank"])
def test_blocks_write_what_one_node_per_record_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prov_detail: str
) -> None:
    first = make_run(
        tmp_path / "a",
        monkeypatch,
        world_size=5,
        run_id="a",
        prov_detail=prov_detail,
        statuses={1: "failed", 2: "running"},
        skip_ranks=(3,),
        extra=_artifacts(tmp_path),
    )
    (first.run_dir / "ranks" / "rank_000004.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"garbage" * 99)
    second = make_run(tmp_path / "b", monkeypatch, world_size=2, run_id="b", extra=_artifacts(tmp_path))
    for dirs in ([first.run_dir], [first.run_dir, second.run_dir]):
        _, graph = assemble(dirs)
        path = tmp_path / "doc.json"
        write_prov_json(graph, path)
        text = path.read_text(encoding="utf-8")
        assert text == written_the_old_way(expanded(graph))
        raw = json.loads(text)
        assert any("problem" in json.dumps(e) for e in raw["entity"].values())  # the damaged rank
        assert len(raw["used"]) >= 2 and len(raw["hadMember"]) >= 3
        # Relations are numbered in the order they were made: blocks reserve their share.
        numbers = sorted(int(key[len("_:r") :]) for name in RELATION_ROLES for key in raw.get(name, {}))
        assert numbers == list(range(1, len(numbers) + 1))
