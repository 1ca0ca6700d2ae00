"""The size of graph.dot and Graphviz's time to lay it out, at 1,024 and 131,072 ranks (issue 12).

The picture's input is built directly (synthetic ranks with host and status, no rank files):
4 ranks per node, and the 1,024-ranks-on-one-host case of a single big machine; a few failed
and missing ranks so the status tallies are exercised.  ``dot -Tsvg`` is timed where Graphviz
is installed (median of ``--reps``).

usage: python benchmarks/bench_graph.py [--sizes 1024,131072] [--reps 3] [--out ...]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import BENCH_DIR, median, write_results

from yprov4ml_hpc._merge._dot import GraphRank, GraphRun, dot_graph

DEFAULT_OUT = BENCH_DIR / "results" / "graph.json"


def synthetic(world_size: int, ranks_per_node: int) -> GraphRun:
    failed = {world_size // 3, world_size - 1}
    missing = {world_size // 2}
    ranks = tuple(
        GraphRank(r, "", "missing")
        if r in missing
        else GraphRank(r, f"nid{r // ranks_per_node:06d}", "failed" if r in failed else "finished")
        for r in range(world_size)
    )
    return GraphRun(
        experiment="bench",
        run_id="1",
        world_size=world_size,
        ranks=ranks,
        contexts=("training", "validation"),
        series=(("training", "loss"), ("training", "lr"), ("validation", "accuracy")),
        params=3,
        rank_files=world_size - len(missing),
        collector="0.1.0",
    )


def measure(world_size: int, per_node: int, detail: str, reps: int, work: Path) -> dict[str, Any]:
    run = synthetic(world_size, per_node)
    started = time.perf_counter()
    picture = dot_graph([run], detail=detail)
    build_s = time.perf_counter() - started
    path = work / f"g_{world_size}_{per_node}_{detail}.dot"
    path.write_text(picture.text)
    row: dict[str, Any] = {
        "ranks": world_size,
        "ranks_per_node": per_node,
        "detail": detail,
        "level": picture.level,
        "dot_nodes": picture.nodes,
        "dot_edges": picture.edges,
        "dot_bytes": len(picture.text.encode()),
        "build_s": round(build_s, 4),
    }
    dot = shutil.which("dot")
    if dot is None:
        row["dot_svg_s"] = None
        return row
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        subprocess.run([dot, "-Tsvg", str(path), "-o", os.devnull], check=True, timeout=900)
        times.append(time.perf_counter() - started)
    row["dot_svg_s"] = round(median(times), 3)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1024,131072")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-graph-") as tmp:
        work = Path(tmp)
        for size in (int(x) for x in args.sizes.split(",")):
            for per_node in (4, size):
                rows.append(measure(size, per_node, "auto", args.reps, work))
                print(rows[-1], file=sys.stderr, flush=True)
        rows.append(measure(1024, 4, "rank", args.reps, work))  # per-rank boxes, on request
        print(rows[-1], file=sys.stderr, flush=True)
    lines = [
        "| ranks | ranks/node | detail | DOT nodes | DOT edges | `dot -Tsvg` (s, median) |",
        "|---:|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        svg = "n/a" if r["dot_svg_s"] is None else f"{r['dot_svg_s']:.2f}"
        lines.append(
            f"| {r['ranks']:,} | {r['ranks_per_node']:,} | {r['detail']} ({r['level']}) | "
            f"{r['dot_nodes']:,} | {r['dot_edges']:,} | {svg} |"
        )
    write_results(args.out, "graph", "\n".join(lines), rows=rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
