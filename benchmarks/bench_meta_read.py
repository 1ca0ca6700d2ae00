"""Reading one rank's metadata for a merge: the metadata record (``/meta``) against the layout
(issue 12, item 2).

Real rank files are written by the collector (``bench_finalize._write_rank_files``: 100 steps of
two series per rank, plus the samplers' start/end samples).  A copy of the run has the record
removed from every file: that is the file as it was before the record existed, read by the
reader's layout path.  Both are measured in the same run, alternating:

- ``read_rank_meta(path, stats=True)`` (what merge and ``read_metas_share`` call per rank) and
  ``stats=False`` (``load_run`` without statistics), each file timed alone, the median over
  every file and round;
- ``read_rank_attrs(path)`` (what ``ls`` calls per rank; the record is read when it holds),
  each file timed alone;
- the serial merge of all files, the real command (``python -m yprov4ml_hpc merge RUN -o OUT
  -j 1``), interpreter start included; ``--version`` alone is measured beside it.

usage: python benchmarks/bench_meta_read.py [--ranks 1024] [--reps 3] [--out FILE]
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

from _common import BENCH_DIR, clean_launcher_env, median, write_results
from bench_finalize import _write_rank_files

DEFAULT_OUT = BENCH_DIR / "results" / "meta_read.json"


def _strip_records(run_dir: Path, target: Path) -> Path:
    """A copy of ``run_dir`` whose rank files have no metadata record (read from the layout)."""
    import h5py

    from yprov4ml_hpc import _constants as C

    shutil.copytree(run_dir, target)
    for path in sorted((target / "ranks").glob("rank_*.h5")):
        with h5py.File(path, "r+") as handle:
            del handle[C.META_DATASET]
    return target


def _per_file_ms(paths: list[Path], stats: bool) -> list[float]:
    from yprov4ml_hpc._reader import read_rank_meta

    out = []
    for path in paths:
        started = time.perf_counter()
        read_rank_meta(path, stats=stats)
        out.append((time.perf_counter() - started) * 1e3)
    return out


def _attrs_ms(paths: list[Path]) -> list[float]:
    from yprov4ml_hpc._reader import read_rank_attrs

    out = []
    for path in paths:
        started = time.perf_counter()
        read_rank_attrs(path)
        out.append((time.perf_counter() - started) * 1e3)
    return out


def _timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800, check=False)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({proc.returncode}): {proc.stderr[-800:]}")
    return elapsed


def _same_metas(before: list[Path], after: list[Path]) -> bool:
    """The two sources give the same RankMeta for every file (path and size aside)."""
    from yprov4ml_hpc._reader import read_rank_attrs, read_rank_meta

    for old, new in zip(before, after, strict=True):
        a, b = read_rank_meta(old, stats=True), read_rank_meta(new, stats=True)
        fields = ("attrs", "params", "artifacts", "events", "series")
        if any(getattr(a, f) != getattr(b, f) for f in fields):
            return False
        if not read_rank_attrs(old) == read_rank_attrs(new) == a.attrs:
            return False
    return True


def bench(world_size: int, reps: int, workdir: Path) -> dict[str, Any]:
    import h5py

    from yprov4ml_hpc import _constants as C

    started = time.perf_counter()
    after_dir = _write_rank_files(workdir / "after", world_size, 100)
    written = time.perf_counter() - started
    before_dir = _strip_records(after_dir, workdir / "before" / after_dir.name)
    dirs = {"before (layout)": before_dir, "after (record)": after_dir}
    paths = {name: sorted((d / "ranks").glob("rank_*.h5")) for name, d in dirs.items()}
    with h5py.File(paths["after (record)"][0], "r") as handle:
        record_bytes = len(handle[C.META_DATASET][()])
        series = sum(len(ctx) for ctx in handle[C.METRICS_GROUP].values())
    reads: dict[tuple[str, bool], list[float]] = {(n, s): [] for n in dirs for s in (True, False)}
    attr_reads: dict[str, list[float]] = {n: [] for n in dirs}
    env = clean_launcher_env({**os.environ, "YPROV4ML_HPC_PROGRESS": "0"})
    cli = [sys.executable, "-m", "yprov4ml_hpc"]
    merges: dict[str, list[float]] = {"start only (--version)": [], **{n: [] for n in dirs}}
    for _ in range(reps):
        for name in dirs:
            for stats in (True, False):
                reads[name, stats].extend(_per_file_ms(paths[name], stats))
            attr_reads[name].extend(_attrs_ms(paths[name]))
        merges["start only (--version)"].append(_timed([*cli, "--version"], env))
        for name, run_dir in dirs.items():
            out = workdir / "out" / name.split()[0]
            merges[name].append(_timed([*cli, "merge", str(run_dir), "-o", str(out), "-j", "1"], env))
    documents = {p.read_bytes() for p in (workdir / "out").glob("*/prov_*.json")}
    start = median(merges["start only (--version)"])
    result = {
        "ranks": world_size,
        "reps": reps,
        "series_per_file": series,
        "record_bytes": record_bytes,
        "file_bytes": paths["after (record)"][0].stat().st_size,
        "write_rank_files_s": round(written, 1),
        "same_metas": _same_metas(paths["before (layout)"], paths["after (record)"]),
        "same_document": len(documents) == 1,
        "read_ms": {
            f"{name}, stats={stats}": {
                "median": round(median(v), 3),
                "p90": round(sorted(v)[int(len(v) * 0.9)], 3),
            }
            for (name, stats), v in reads.items()
        },
        "read_attrs_ms": {name: round(median(v), 3) for name, v in attr_reads.items()},
        "merge_s": {name: round(median(v), 3) for name, v in merges.items()},
        "merge_per_file_ms": {
            name: round((median(merges[name]) - start) / world_size * 1e3, 3) for name in dirs
        },
    }
    print(result, file=sys.stderr, flush=True)
    return result


def markdown(result: dict[str, Any]) -> str:
    n = result["ranks"]
    lines = [
        f"{n:,} rank files, {result['series_per_file']} series each, record {result['record_bytes']:,} B "
        f"of {result['file_bytes']:,} B; same metas: {result['same_metas']}, same document: "
        f"{result['same_document']}",
        "",
        "| | before (layout) | after (record) | ratio |",
        "|---|---:|---:|---:|",
    ]
    for stats in (True, False):
        old = result["read_ms"][f"before (layout), stats={stats}"]["median"]
        new = result["read_ms"][f"after (record), stats={stats}"]["median"]
        lines.append(
            f"| read_rank_meta(stats={stats}), median per file "
            f"| {old:.2f} ms | {new:.2f} ms | {old / new:.1f}x |"
        )
    old, new = result["read_attrs_ms"]["before (layout)"], result["read_attrs_ms"]["after (record)"]
    lines.append(
        f"| read_rank_attrs (`ls`), median per file | {old:.2f} ms | {new:.2f} ms | {old / new:.1f}x |"
    )
    old, new = result["merge_s"]["before (layout)"], result["merge_s"]["after (record)"]
    per_file = result["merge_per_file_ms"]
    per_old, per_new = per_file["before (layout)"], per_file["after (record)"]
    lines.append(
        f"| `merge -j 1` of {n:,} files (start {result['merge_s']['start only (--version)']:.2f} s included) "
        f"| {old:.2f} s ({per_old:.2f} ms/file) | {new:.2f} s ({per_new:.2f} ms/file) | {old / new:.1f}x |"
    )
    return "\n".join(lines)


def main() -> int:
    os.environ.setdefault("YPROV4ML_HPC_CARBON", "0")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ranks", type=int, default=1024, help="rank files in the run")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="JSON output (default: %(default)s)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-meta-read-") as tmp:
        result = bench(args.ranks, args.reps, Path(tmp))
    write_results(args.out, "meta_read", markdown(result), result=result)
    return 0 if result["same_metas"] and result["same_document"] else 1


if __name__ == "__main__":
    sys.exit(main())
