"""Finalize and merge at scale (issue 3).

1. ``build`` (the one function finalize and ``yprov4ml-hpc merge`` share) from synthetic rank
   metas of 1,024 / 16,384 / 131,072 ranks, in memory, no MPI: wall time, PROV-JSON bytes per
   rank, peak RSS.  The metas are clones of the merge meta of one real rank file (two training
   and one validation series, params), 4 ranks per node, default ``prov_detail`` ("auto": no
   per-rank series above 16 ranks).  Targets on this machine: <= 1 s at 1,024, <= 10 s at 16,384.
2. Offline merge of 1,024 real small rank files (written by 1,024 Run objects in one process):
   ``build`` reading every file, as ``yprov4ml-hpc merge`` does.  Target: <= 10 s.
3. Real ``mpiexec -n 2/4/8`` jobs: each rank times its ``end_run`` (close + collective finalize);
   oversubscribed on small machines, reported as measured.

usage: python benchmarks/bench_finalize.py [--quick] [--out benchmarks/results/finalize.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from yprov4ml_hpc._reader import RankMeta

from _common import BENCH_DIR, clean_launcher_env, machine_info, median, write_json

DEFAULT_OUT = BENCH_DIR / "results" / "finalize.json"
RANKS_PER_NODE = 4

MPI_JOB = r"""
import json, sys, time
from mpi4py import MPI
import yprov4ml_hpc as prov4ml
comm = MPI.COMM_WORLD
run = prov4ml.start_run("bench_fin", provenance_save_dir=sys.argv[1], flush_interval_s=0)
for step in range(int(sys.argv[2])):
    prov4ml.log_metric("loss", 1.0 / (step + 1), context="training", step=step)
    prov4ml.log_metric("acc", step * 1e-3, context="training", step=step)
comm.Barrier()
started = time.perf_counter()
prov4ml.end_run()
elapsed = time.perf_counter() - started
times = comm.gather(elapsed, root=0)
if comm.rank == 0:
    print("RESULT " + json.dumps(times))
"""


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _template_meta(workdir: Path, steps: int) -> RankMeta:
    """The merge meta of one real rank file: what every synthetic rank will look like."""
    import yprov4ml_hpc as prov4ml
    from yprov4ml_hpc._reader import read_rank_meta

    prov4ml.start_run("template", provenance_save_dir=workdir, flush_interval_s=0)
    prov4ml.log_params({"lr": 1e-3, "batch_size": 256, "optimizer": "adamw"})
    for step in range(steps):
        prov4ml.log_metric("loss", 1.0 / (step + 1), context="training", step=step)
        prov4ml.log_metric("lr", 1e-3, context="training", step=step)
    prov4ml.log_metric("accuracy", 0.9, context="validation", step=steps)
    run_dir = prov4ml.end_run()
    return read_rank_meta(run_dir / "ranks" / "rank_000000.h5", stats=True)


def _clone(meta: RankMeta, world_size: int) -> dict[int, RankMeta]:
    """Synthetic ranks: copies of a frozen record (series shared) with their own attrs."""
    metas = {}
    for rank in range(world_size):
        attrs = dataclasses.replace(
            meta.attrs,
            rank=rank,
            world_size=world_size,
            local_rank=rank % RANKS_PER_NODE,
            host=f"nid{rank // RANKS_PER_NODE:06d}",
            pid=100_000 + rank,
        )
        metas[rank] = dataclasses.replace(meta, rank=rank, attrs=attrs)
    return metas


def bench_synthetic(sizes: list[int], workdir: Path) -> list[dict[str, Any]]:
    from yprov4ml_hpc._merge import build

    template = _template_meta(workdir / "template", 200)
    rows = []
    for world_size in sizes:
        metas = _clone(template, world_size)
        out = workdir / f"synthetic_{world_size}"
        started = time.perf_counter()
        result = build(out, metas=metas, generated_by="finalize")
        elapsed = time.perf_counter() - started
        rows.append(
            {
                "ranks": world_size,
                "build_s": round(elapsed, 3),
                "prov_json_bytes": result.document_bytes,
                "bytes_per_rank": round(result.document_bytes / world_size, 1),
                "summary_bytes": result.summary_path.stat().st_size,
                "peak_rss_mb": round(_peak_rss_mb(), 1),
            }
        )
        print(f"synthetic {world_size}: {elapsed:.2f} s", file=sys.stderr, flush=True)
        del metas, result
        shutil.rmtree(out, ignore_errors=True)
    return rows


def _write_rank_files(save_dir: Path, world_size: int, steps: int) -> Path:
    from yprov4ml_hpc import Run

    os.environ["WORLD_SIZE"] = str(world_size)  # explicit rank= takes the job size from here
    try:
        run_dir = None
        for rank in range(world_size):
            run = Run(
                "offline",
                provenance_save_dir=save_dir,
                run_id="bench",
                rank=rank,
                flush_interval_s=0,
                install_signal_handlers=False,
                carbon=False,
            )
            run.log_param("lr", 1e-3)
            for step in range(steps):
                run.log_metric("loss", 1.0 / (step + 1) + rank, context="training", step=step)
            run.log_metric("accuracy", 0.9, context="validation")
            run.close("finished", "benchmark")
            run_dir = run.run_dir
    finally:
        del os.environ["WORLD_SIZE"]
    assert run_dir is not None
    return run_dir


def bench_offline(world_size: int, workdir: Path) -> dict[str, Any]:
    import yprov4ml_hpc

    started = time.perf_counter()
    run_dir = _write_rank_files(workdir / "offline", world_size, 100)
    written = time.perf_counter() - started
    workers = os.cpu_count() or 1
    times: dict[int, list[float]] = {1: [], workers: []}
    for _ in range(2):  # alternate serial and parallel reading (what `yprov4ml-hpc merge` does)
        for count, samples in times.items():
            started = time.perf_counter()
            result = yprov4ml_hpc.merge(run_dir, workers=count)
            samples.append(time.perf_counter() - started)
    print(f"offline {world_size}: {times}", file=sys.stderr, flush=True)
    return {
        "ranks": world_size,
        "write_rank_files_s": round(written, 2),
        "workers": workers,
        "merge_serial_s": round(min(times[1]), 3),
        "merge_parallel_s": round(min(times[workers]), 3),
        "rank_file_bytes_each": (run_dir / "ranks" / "rank_000000.h5").stat().st_size,
        "prov_json_bytes": result.document_bytes,
    }


def _mpiexec() -> str | None:
    candidate = Path(sysconfig.get_path("scripts")) / "mpiexec"
    return str(candidate) if candidate.exists() else shutil.which("mpiexec")


def bench_mpi(rank_counts: list[int], steps: int, reps: int, workdir: Path) -> list[dict[str, Any]]:
    mpiexec = _mpiexec()
    if mpiexec is None:
        return [{"skipped": "no mpiexec"}]
    script = workdir / "mpi_job.py"
    script.write_text(MPI_JOB)
    rows = []
    for n in rank_counts:
        maxima, medians = [], []
        for rep in range(reps):
            save = workdir / f"mpi_{n}_{rep}"
            proc = subprocess.run(
                [mpiexec, "-n", str(n), sys.executable, str(script), str(save), str(steps)],
                capture_output=True,
                text=True,
                timeout=300,
                env=clean_launcher_env(dict(os.environ)),
                check=False,
            )
            line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
            if proc.returncode != 0 or line is None:
                rows.append({"ranks": n, "error": (proc.stderr or proc.stdout)[-500:]})
                break
            times = json.loads(line[len("RESULT ") :])
            maxima.append(max(times))
            medians.append(median(times))
        else:
            rows.append(
                {
                    "ranks": n,
                    "reps": reps,
                    "end_run_max_s": round(median(maxima), 3),
                    "end_run_median_s": round(median(medians), 3),
                }
            )
        print(f"mpiexec -n {n}: {rows[-1]}", file=sys.stderr, flush=True)
    return rows


def markdown(payload: dict[str, Any]) -> str:
    lines = [
        "| ranks | build (s) | PROV-JSON bytes | bytes/rank | peak RSS (MB) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for row in payload["synthetic_build"]:
        lines.append(
            f"| {row['ranks']:,} | {row['build_s']:.3f} | {row['prov_json_bytes']:,} | "
            f"{row['bytes_per_rank']:.0f} | {row['peak_rss_mb']:.0f} |"
        )
    off = payload["offline_merge"]
    lines += [
        "",
        f"| offline merge of real rank files | 1 process (s) | {off['workers']} processes (s) "
        "| file bytes each |",
        "|---:|---:|---:|---:|",
        f"| {off['ranks']:,} | {off['merge_serial_s']:.3f} | {off['merge_parallel_s']:.3f} | "
        f"{off['rank_file_bytes_each']:,} |",
    ]
    lines += ["", "| mpiexec -n | end_run max over ranks (s) | end_run median (s) |", "|---:|---:|---:|"]
    for row in payload["mpiexec_end_run"]:
        if "end_run_max_s" in row:
            lines.append(f"| {row['ranks']} | {row['end_run_max_s']:.3f} | {row['end_run_median_s']:.3f} |")
        else:
            lines.append(f"| {row.get('ranks', '-')} | {row.get('error', row.get('skipped'))} | |")
    return "\n".join(lines)


def main() -> int:
    # codecarbon's tracker costs seconds of CPU per start and stop: it is the samplers' cost
    # (bench_samplers.py), not the finalize's, so it stays off here unless asked for.
    os.environ.setdefault("YPROV4ML_HPC_CARBON", "0")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (about half a minute)")
    parser.add_argument("--sizes", default=None, help="synthetic rank counts, comma separated")
    parser.add_argument("--offline-ranks", type=int, default=None)
    parser.add_argument("--mpi-ranks", default=None, help="mpiexec -n values, comma separated")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="JSON output (default: %(default)s)")
    args = parser.parse_args()
    sizes = [int(x) for x in (args.sizes or ("1024,4096" if args.quick else "1024,16384,131072")).split(",")]
    offline = args.offline_ranks or (128 if args.quick else 1024)
    mpi_ranks = [int(x) for x in (args.mpi_ranks or ("2,4" if args.quick else "2,4,8")).split(",")]
    command = " ".join([Path(sys.executable).name, *sys.argv])
    with tempfile.TemporaryDirectory(prefix="bench-finalize-") as tmp:
        work = Path(tmp)
        payload: dict[str, Any] = {
            "benchmark": "finalize",
            "command": command,
            "machine": machine_info(),
            "targets": {
                "build_1024_s": 1.0,
                "build_16384_s": 10.0,
                "bytes_per_rank": 1024,
                "offline_merge_1024_s": 10.0,
            },
            "synthetic_build": bench_synthetic(sizes, work),
            "offline_merge": bench_offline(offline, work),
            "mpiexec_end_run": bench_mpi(mpi_ranks, 1000, 1 if args.quick else 3, work),
        }
    payload["markdown"] = markdown(payload)
    print(payload["markdown"], file=sys.stderr)
    write_json(args.out, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
