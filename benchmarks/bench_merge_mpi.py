"""Offline merge of real rank files: serial, ``-j N`` worker processes, and under
``mpiexec -n 1/2/4`` (issue 12).

Each variant is the real command a user runs (``python -m yprov4ml_hpc merge RUN -o OUT``), so
every figure includes the interpreter's start and the build; the start alone (``--version``)
is measured in the same run and reported beside them.  The variants alternate over ``--reps``
rounds and the median is reported.  On this 2-core machine ``mpiexec -n 4`` is
oversubscribed: read the per-file cost and its scaling, not the absolute times.

usage: python benchmarks/bench_merge_mpi.py [--ranks 1024,4096] [--reps 3] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import BENCH_DIR, clean_launcher_env, median, write_results
from bench_finalize import _mpiexec, _write_rank_files

DEFAULT_OUT = BENCH_DIR / "results" / "merge_mpi.json"


def _timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800, check=False)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({proc.returncode}): {proc.stderr[-800:]}")
    return elapsed


def bench(world_size: int, reps: int, workdir: Path) -> dict[str, Any]:
    started = time.perf_counter()
    run_dir = _write_rank_files(workdir / f"w{world_size}", world_size, 100)
    written = time.perf_counter() - started
    env = clean_launcher_env({**os.environ, "YPROV4ML_HPC_PROGRESS": "0"})
    cli = [sys.executable, "-m", "yprov4ml_hpc"]
    mpiexec = _mpiexec()
    variants: dict[str, list[str]] = {
        "start only (--version)": [*cli, "--version"],
        "serial (-j 1)": [*cli, "merge", str(run_dir), "-o", str(workdir / "o"), "-j", "1"],
        "-j 2": [*cli, "merge", str(run_dir), "-o", str(workdir / "o"), "-j", "2"],
    }
    if mpiexec is not None:
        for n in (1, 2, 4):
            merge = [*cli, "merge", str(run_dir), "-o", str(workdir / "o")]
            variants[f"mpiexec -n {n}"] = [mpiexec, "-n", str(n), *merge]
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(reps):
        for name, command in variants.items():
            times[name].append(_timed(command, env))
    start = median(times["start only (--version)"])
    rows = []
    for name, samples in times.items():
        total = median(samples)
        rows.append(
            {
                "variant": name,
                "median_s": round(total, 3),
                "per_file_ms": (
                    None if name.startswith("start") else round((total - start) / world_size * 1e3, 3)
                ),
            }
        )
    print(f"{world_size} ranks (written in {written:.1f} s): {rows}", file=sys.stderr, flush=True)
    return {"ranks": world_size, "reps": reps, "rows": rows}


def markdown(results: list[dict[str, Any]]) -> str:
    lines = ["| rank files | variant | median (s) | per file, start subtracted (ms) |"]
    lines.append("|---:|---|---:|---:|")
    for result in results:
        for row in result["rows"]:
            per_file = "" if row["per_file_ms"] is None else f"{row['per_file_ms']:.2f}"
            lines.append(f"| {result['ranks']:,} | {row['variant']} | {row['median_s']:.2f} | {per_file} |")
    return "\n".join(lines)


def main() -> int:
    os.environ.setdefault("YPROV4ML_HPC_CARBON", "0")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ranks", default="1024,4096", help="rank files per run, comma separated")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="JSON output (default: %(default)s)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-merge-mpi-") as tmp:
        results = [bench(int(n), args.reps, Path(tmp)) for n in args.ranks.split(",")]
    write_results(args.out, "merge_mpi", markdown(results), results=results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
