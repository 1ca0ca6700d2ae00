"""graph.dot opens at any size: ranks collapsed into nodes and groups, per-rank boxes on request.

The 10^5-rank cases build the picture's input directly (no rank files); the per-rank and
selection cases also go through ``yprov4ml-hpc graph`` on real rank files.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from _merge_kit import make_run

from yprov4ml_hpc._cli import main
from yprov4ml_hpc._errors import ConfigError
from yprov4ml_hpc._merge._dot import (
    PROCESS_BOX_BUDGET,
    RANK_DETAIL_MAX,
    GraphRank,
    GraphRun,
    RankSelection,
    dot_graph,
    parse_rank_ranges,
)

BOX = re.compile(r'^  "([^"]+)" \[label="((?:[^"\\]|\\.)*)"', re.MULTILINE)
ARROW = re.compile(r'^  "([^"]+)" -> "([^"]+)"', re.MULTILINE)


def synthetic_run(world_size: int, ranks_per_node: int, *, failed=(), missing=()) -> GraphRun:
    failed, missing = set(failed), set(missing)
    ranks = tuple(
        GraphRank(r, "", "missing")
        if r in missing
        else GraphRank(r, f"nid{r // ranks_per_node:06d}", "failed" if r in failed else "finished")
        for r in range(world_size)
    )
    return GraphRun(
        experiment="big",
        run_id="1",
        world_size=world_size,
        ranks=ranks,
        contexts=("training", "validation"),
        series=(("training", "loss"), ("training", "lr"), ("validation", "accuracy")),
        params=3,
        artifacts={("model", "output"): world_size},
        rank_files=world_size - len(missing),
        collector="0.1.0",
    )


def boxes(text: str) -> dict[str, str]:
    return {ident: label.replace("\\n", "\n") for ident, label in BOX.findall(text)}


def counted(labels: list[str], pattern: str) -> int:
    return sum(int(m.replace(",", "")) for label in labels for m in re.findall(pattern, label))


def test_default_picture_of_131072_ranks_stays_small_and_keeps_the_tallies() -> None:
    failed = {5, 77_777, 131_071}
    missing = {1000, 1001}
    picture = dot_graph([synthetic_run(131_072, 4, failed=failed, missing=missing)])
    assert picture.level == "node"
    assert picture.nodes < 500 and picture.edges < 600, (picture.nodes, picture.edges)
    found = boxes(picture.text)
    assert len(found) == picture.nodes and len(ARROW.findall(picture.text)) == picture.edges
    assert not any(ident.startswith("run:rank") for ident in found)
    groups = [label for ident, label in found.items() if re.fullmatch(r"run:nodes\d+", ident)]
    # Node groups cover every node and every rank with a file, and their tallies add up.
    assert counted(groups, r"([\d,]+) nodes,") == 131_072 // 4
    assert counted(groups, r"nodes, ([\d,]+) ranks") == 131_072 - len(missing)
    assert counted(groups, r"([\d,]+) failed") == len(failed)
    assert "2 ranks: 1000-1001" in found["run:missing"]
    assert "3 failed, 2 missing" in found["run:job"]


def test_one_node_with_100000_ranks_is_split_into_rank_groups() -> None:
    picture = dot_graph([synthetic_run(100_000, 100_000, failed={99_999})])
    found = boxes(picture.text)
    groups = {ident: label for ident, label in found.items() if ".g" in ident}
    assert 2 <= len(groups) <= 16 and picture.nodes < 50
    assert counted(list(groups.values()), r"\n([\d,]+):") == 100_000
    assert sum("1 failed" in g for g in groups.values()) == 1
    assert all((ident, "run:node0") in ARROW.findall(picture.text) for ident in groups)


def test_many_big_nodes_stay_within_the_box_budget() -> None:
    picture = dot_graph([synthetic_run(100 * 512, 512)])  # 100 nodes of 512 ranks: 2 groups each
    process = [i for i in boxes(picture.text) if re.fullmatch(r"run:node\d+(\.g\d+)?", i)]
    assert len(process) == 300 <= PROCESS_BOX_BUDGET
    picture = dot_graph([synthetic_run(250 * 512, 512)])  # no room left for groups
    assert not any(".g" in i for i in boxes(picture.text)) and picture.nodes < 300


def test_detail_rank_and_selections_on_a_synthetic_job() -> None:
    run = synthetic_run(1024, 8, failed={9})
    by_rank = boxes(dot_graph([run], selection=RankSelection(ranks=((0, 63),))).text)
    assert {i for i in by_rank if i.startswith("run:rank")} == {f"run:rank{r}" for r in range(64)}
    assert "rank 9 (failed)" in by_rank["run:rank9"]
    on_host = boxes(dot_graph([run], selection=RankSelection(hosts=("nid000003",))).text)
    assert {i for i in on_host if i.startswith("run:rank")} == {f"run:rank{r}" for r in range(24, 32)}
    both = RankSelection(hosts=("nid00000*",), ranks=parse_rank_ranges("60-70"))
    assert {i for i in boxes(dot_graph([run], selection=both).text) if i.startswith("run:rank")} == {
        f"run:rank{r}" for r in range(60, 71)
    }
    # Above the auto limit a selection is drawn by node unless rank detail is asked for.
    wide = RankSelection(ranks=((0, 511),))
    assert dot_graph([run], selection=wide).level == "node"
    assert dot_graph([run], selection=wide, detail="rank").nodes > 512


def test_bad_selections_and_too_much_detail_are_clear_errors() -> None:
    run = synthetic_run(4096, 4)
    with pytest.raises(ConfigError, match=r"4,096 ranks selected, at most 2,048.*--ranks"):
        dot_graph([run], detail="rank")
    assert RANK_DETAIL_MAX == 2048
    with pytest.raises(ConfigError, match=r"'x7' is not a rank or a range"):
        parse_rank_ranges("0-3,x7")
    with pytest.raises(ConfigError, match="ends before it starts"):
        parse_rank_ranges("9-2")
    with pytest.raises(ConfigError, match=r"no rank matches.*nid000000"):
        dot_graph([run], selection=RankSelection(hosts=("gpu*",)))
    with pytest.raises(ConfigError, match="detail must be one of"):
        dot_graph([run], detail="everything")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_graphviz_lays_out_the_default_picture_of_131072_ranks(tmp_path: Path) -> None:
    path = tmp_path / "big.dot"
    path.write_text(dot_graph([synthetic_run(131_072, 4, failed={3})]).text)
    command = ["dot", "-Tsvg", str(path)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count('class="node"') < 500


def test_cli_detail_rank_node_and_selection_on_real_rank_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    made = make_run(tmp_path / "runs", monkeypatch, world_size=4, statuses={2: "failed"}, skip_ranks=(3,))

    def draw(*options: str) -> dict[str, str]:
        out = tmp_path / "g"
        assert main(["graph", str(made.run_dir), "-o", str(out), *options]) == 0
        return boxes((out / "graph.dot").read_text())

    ranks = draw("--detail", "rank")
    assert {i for i in ranks if i.startswith("run:rank")} == {f"run:rank{r}" for r in range(4)}
    assert "rank 2 (failed)" in ranks["run:rank2"] and "rank 3 (missing)" in ranks["run:rank3"]
    assert "one box per rank" in capsys.readouterr().out
    nodes = draw("--detail", "node")
    assert not any(i.startswith("run:rank") for i in nodes)
    assert "3 ranks: 2 finished, 1 failed" in nodes["run:node0"]
    assert "1 ranks: 3" in nodes["run:missing"]
    picked = draw("--ranks", "1-2")
    assert {i for i in picked if i.startswith("run:rank")} == {"run:rank1", "run:rank2"}
    assert "showing 2 selected ranks" in picked["run:job"]
    assert main(["graph", str(made.run_dir), "--node", "no-such-host", "-o", str(tmp_path / "g")]) == 2
    assert "no rank matches" in capsys.readouterr().err
