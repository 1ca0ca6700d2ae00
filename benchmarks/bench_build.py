"""Finalize's build at scale, each measurement in a fresh process (issue 12).

``build`` (what finalize and ``yprov4ml-hpc merge`` share) from synthetic rank metas: clones
of the merge meta of one real rank file (two training series and one validation series, three
params), 4 ranks per node, default ``prov_detail`` (no per-rank series above 16 ranks), as
``bench_finalize.py`` builds them.  One process per (size, repetition, code tree), so the peak
RSS is that build's own: the process's peak, synthetic metas included, as rank 0 would see it.

``--baseline DIR`` also measures the package in DIR (e.g. a ``git worktree`` of the commit
before a change), alternating with this tree in every repetition, so both see the same load.

usage: python benchmarks/bench_build.py [--sizes 1024,16384,131072] [--reps 3]
                                        [--baseline DIR] [--out benchmarks/results/build.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import BENCH_DIR, median, write_results

DEFAULT_OUT = BENCH_DIR / "results" / "build.json"
REPO = BENCH_DIR.parent

# Runs in a child whose PYTHONPATH is the tree under test; prints one JSON line.
CHILD = r"""
import json, os, resource, sys, time, warnings
from pathlib import Path
warnings.simplefilter("ignore")
sys.path.insert(0, sys.argv[1])  # benchmarks/: _template_meta and _clone
import bench_finalize as bf
from yprov4ml_hpc._merge import build
from yprov4ml_hpc._reader import read_rank_meta
template = read_rank_meta(Path(sys.argv[2]), stats=True)
metas = bf._clone(template, int(sys.argv[3]))
rss_metas = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
started = time.perf_counter()
result = build(Path(sys.argv[4]), metas=metas, generated_by="finalize")
elapsed = time.perf_counter() - started
print("RESULT " + json.dumps({
    "build_s": elapsed,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "rss_metas_mb": rss_metas,
    "package": __import__("yprov4ml_hpc").__file__,
    "prov_json_bytes": result.document_bytes,
}))
"""


def _template_file(workdir: Path) -> Path:
    """One real rank file (written by this tree) that every synthetic rank copies."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import bench_finalize as bf; "
        "from pathlib import Path; bf._template_meta(Path(sys.argv[2]), 200)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "YPROV4ML_HPC_CARBON": "0"}
    subprocess.run([sys.executable, "-c", code, str(BENCH_DIR), str(workdir)], check=True, env=env, cwd=REPO)
    return next(workdir.glob("template_*/ranks/rank_000000.h5"))


def _measure(tree: Path, template: Path, ranks: int, out: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree), "YPROV4ML_HPC_CARBON": "0"}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(BENCH_DIR), str(template), str(ranks), str(out)],
        cwd=out.parent,  # `python -c` puts the working directory first on sys.path
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=1800,
    )
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"build of {ranks} ranks with {tree} failed: {proc.stderr[-2000:]}")
    return dict(json.loads(line[len("RESULT ") :]))


def _commit(tree: Path | None) -> str | None:
    """The commit a source tree is checked out at (None without git or a baseline)."""
    if tree is None:
        return None
    proc = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=False)
    return proc.stdout.strip() or None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1024,16384,131072", help="rank counts, comma separated")
    parser.add_argument("--reps", type=int, default=3, help="repetitions per size and tree")
    parser.add_argument("--baseline", default=None, help="a second source tree to measure alongside")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="JSON output (default: %(default)s)")
    args = parser.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    trees = {"this": REPO}
    if args.baseline:
        trees = {"baseline": Path(args.baseline).resolve(), **trees}
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-build-") as tmp:
        work = Path(tmp)
        template = _template_file(work / "template")
        for ranks in sizes:
            samples: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
            for rep in range(args.reps):
                for name, tree in trees.items():
                    sample = _measure(tree, template, ranks, work / f"{name}_{ranks}_{rep}")
                    samples[name].append(sample)
                    print(f"{ranks} ranks, {name}: {sample}", file=sys.stderr, flush=True)
            for name, got in samples.items():
                rows.append(
                    {
                        "ranks": ranks,
                        "tree": name,
                        "reps": len(got),
                        "build_s": round(median([s["build_s"] for s in got]), 3),
                        "peak_rss_mb": round(median([s["peak_rss_mb"] for s in got]), 1),
                        "rss_metas_mb": round(median([s["rss_metas_mb"] for s in got]), 1),
                        "bytes_per_rank": round(got[0]["prov_json_bytes"] / ranks, 1),
                        "package": os.path.relpath(got[0]["package"], trees[name]),
                    }
                )
    lines = [
        "| ranks | tree | build (s, median) | peak RSS (MB) | of which metas (MB) | PROV-JSON B/rank |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['ranks']:,} | {r['tree']} | {r['build_s']:.3f} | {r['peak_rss_mb']:.0f} | "
        f"{r['rss_metas_mb']:.0f} | {r['bytes_per_rank']:.0f} |"
        for r in rows
    ]
    # The baseline is a tree on this machine: results name it by commit, not by its path.
    command = " ".join(["python3", *("BASELINE_TREE" if a == args.baseline else a for a in sys.argv)])
    write_results(args.out, "build", "\n".join(lines), rows=rows, command=command,
                  baseline_commit=_commit(trees.get("baseline")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
