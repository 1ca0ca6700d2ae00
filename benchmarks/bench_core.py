"""Core costs of yprov4ml_hpc (issue 2): hot-path latency, memory, disk, import, run lifecycle.

Every figure is measured in the same process run as its baseline, interleaved block by block:

* latency: each ``log_metric`` call timed alone with ``perf_counter_ns``; the cost of the two
  timer reads is measured in the same run (an empty timed region) and subtracted;
* mean: tight loops of calls against a bare ``for`` loop, (tool - bare) / calls, flushes
  included (the ring fills and is written to HDF5 every ``buffer_size`` points);
* RSS growth between 10^5 and 10^7 points of one series, bytes on disk per point of a
  10^6-point series, ``import yprov4ml_hpc`` time and start_run/end_run time in fresh processes.

usage: python benchmarks/bench_core.py [--calls N] [--rss-points N] [--out results/core.json]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import clean_launcher_env, distribution, machine_info, median, write_json

TARGETS = {
    "p50_us": 1.0,
    "p99_us": 5.0,
    "mean_us": 1.5,
    "rss_growth_mb": 5.0,
    "bytes_per_point": 25.0,
    "import_ms": 150.0,
    "start_run_ms": 50.0,
}


# --- latency and mean cost of one call ---------------------------------------------------------
def _timer_only(lat: list[int], first: int, count: int) -> None:
    pc = time.perf_counter_ns
    for i in range(first, first + count):
        t0 = pc()
        lat[i] = pc() - t0


def _timed_api(log_metric: Any, ctx: Any, lat: list[int], first: int, count: int) -> None:
    """The call as a yProv4ML script writes it: module function, keyword context and step."""
    pc = time.perf_counter_ns
    for i in range(first, first + count):
        t0 = pc()
        log_metric("loss_api", 0.5, context=ctx, step=i)
        lat[i] = pc() - t0


def _timed_method(log_metric: Any, ctx: Any, lat: list[int], first: int, count: int) -> None:
    """The same point through the bound ``Run.log_metric``, positional arguments."""
    pc = time.perf_counter_ns
    for i in range(first, first + count):
        t0 = pc()
        log_metric("loss_method", 0.5, ctx, i)
        lat[i] = pc() - t0


def _bare_loop(count: int, first: int) -> int:
    pc = time.perf_counter_ns
    t0 = pc()
    for _i in range(first, first + count):
        pass
    return pc() - t0


def _loop_api(log_metric: Any, ctx: Any, count: int, first: int) -> int:
    pc = time.perf_counter_ns
    t0 = pc()
    for i in range(first, first + count):
        log_metric("mean_api", 0.5, context=ctx, step=i)
    return pc() - t0


def _loop_method(log_metric: Any, ctx: Any, count: int, first: int) -> int:
    pc = time.perf_counter_ns
    t0 = pc()
    for i in range(first, first + count):
        log_metric("mean_method", 0.5, ctx, i)
    return pc() - t0


def _loop_log_metrics(log_metrics: Any, ctx: Any, count: int, first: int) -> int:
    metrics = {f"m{k}": 0.25 * k for k in range(10)}
    pc = time.perf_counter_ns
    t0 = pc()
    for i in range(first, first + count):
        log_metrics(metrics, context=ctx, step=i)
    return pc() - t0


def _flush_counters(run: Any) -> tuple[int, float]:
    writer = getattr(run, "_writer", None)  # the journal writer thread's accounting
    return int(getattr(writer, "flushes", 0)), float(getattr(writer, "flush_time_s", 0.0))


def bench_latency(calls: int, blocks: int, workdir: Path) -> dict[str, Any]:
    """Per-call latency distribution and tight-loop mean, interleaved with their baselines."""
    import yprov4ml_hpc as prov

    run = prov.start_run("bench_core", provenance_save_dir=str(workdir))
    ctx = prov.Context.TRAINING
    api, method, api_many = prov.log_metric, run.log_metric, prov.log_metrics
    # Warm-up: first points create the series (slow path) and touch every code path once.
    for i in range(20_000):
        api("loss_api", 0.5, context=ctx, step=i - 20_000)
        method("loss_method", 0.5, ctx, i - 20_000)
    blocks = max(1, min(blocks, calls))
    block = calls // blocks
    calls = block * blocks
    lat_timer, lat_api, lat_method = [0] * calls, [0] * calls, [0] * calls
    flushes0, flush_s0 = _flush_counters(run)
    order = ("timer", "api", "method")
    for b in range(blocks):
        first = b * block
        for which in order[b % 3 :] + order[: b % 3]:
            if which == "timer":
                _timer_only(lat_timer, first, block)
            elif which == "api":
                _timed_api(api, ctx, lat_api, first, block)
            else:
                _timed_method(method, ctx, lat_method, first, block)
    flushes1, flush_s1 = _flush_counters(run)

    bare_ns = api_ns = method_ns = many_ns = 0
    bare_blocks: list[float] = []
    api_blocks: list[float] = []
    many_block = max(1, block // 10)  # log_metrics logs 10 points per call
    for b in range(blocks):
        first = b * block
        bare = _bare_loop(block, first)
        bare_many = _bare_loop(many_block, first)
        a = _loop_api(api, ctx, block, first)
        m = _loop_method(method, ctx, block, first)
        many = _loop_log_metrics(api_many, ctx, many_block, first)
        bare_ns += bare
        api_ns += a
        method_ns += m
        many_ns += many - bare_many
        bare_blocks.append(bare / block)
        api_blocks.append((a - bare) / block)
    flushes2, flush_s2 = _flush_counters(run)
    t0 = time.perf_counter()
    prov.end_run()
    end_s = time.perf_counter() - t0

    timer = distribution(lat_timer)
    timer_p50_ns = timer["p50_us"] * 1e3
    return {
        "calls": calls,
        "blocks": blocks,
        "buffer_size": run.buffer_size,
        "timer_overhead": timer,
        "note": "per-call figures have the timer's own p50 subtracted; *_raw keep it",
        "api_call": "yprov4ml_hpc.log_metric('loss_api', 0.5, context=Context.TRAINING, step=i)",
        "api": distribution(lat_api, timer_p50_ns),
        "api_raw": distribution(lat_api),
        "method_call": "run.log_metric('loss_method', 0.5, Context.TRAINING, i)",
        "method": distribution(lat_method, timer_p50_ns),
        "method_raw": distribution(lat_method),
        "flushes_during_latency": flushes1 - flushes0,
        "flush_time_during_latency_s": flush_s1 - flush_s0,
        "mean_tight_loop": {
            "bare_loop_ns_per_iter": bare_ns / calls,
            "api_us": (api_ns - bare_ns) / calls / 1e3,
            "method_us": (method_ns - bare_ns) / calls / 1e3,
            "api_us_median_of_blocks": median(api_blocks) / 1e3,
            "log_metrics_us_per_point": many_ns / (many_block * blocks * 10) / 1e3,
            "flushes": flushes2 - flushes1,
            "flush_time_s": flush_s2 - flush_s1,
            "flush_us_per_point": (flush_s2 - flush_s1) * 1e6 / (3 * calls + many_block * blocks * 10),
        },
        "end_run_s_after_3m_points": end_s,
    }


# --- bytes on disk per point --------------------------------------------------------------------
def bench_disk(points: int, workdir: Path) -> dict[str, Any]:
    """File size of a run holding one series of ``points`` points, per point."""
    import yprov4ml_hpc as prov

    run = prov.start_run("bench_disk", provenance_save_dir=str(workdir))
    method = run.log_metric
    for i in range(points):
        method("loss", 0.5 + i * 1e-7, "training", i)
    run_dir = prov.end_run()
    rank_files = sorted((Path(run_dir) / "ranks").glob("rank_*.h5"))
    rank_bytes = sum(f.stat().st_size for f in rank_files)
    empty = prov.start_run("bench_disk_empty", provenance_save_dir=str(workdir))
    del empty
    empty_dir = prov.end_run()
    empty_bytes = sum(f.stat().st_size for f in (Path(empty_dir) / "ranks").glob("rank_*.h5"))
    return {
        "points": points,
        "rank_file_bytes": rank_bytes,
        "empty_rank_file_bytes": empty_bytes,
        "bytes_per_point": rank_bytes / points,
        "bytes_per_point_excluding_empty_file": (rank_bytes - empty_bytes) / points,
        "raw_bytes_per_point": 24,
    }


# --- memory growth (run in a fresh process) -----------------------------------------------------
def bench_rss(
    start_points: int, end_points: int, workdir: Path, settle_s: float, carbon: bool
) -> dict[str, Any]:
    """RSS after ``start_points`` and after ``end_points`` points of one series.

    The background samplers start with the run (codecarbon takes over a second and tens of
    MB); the first checkpoint waits ``settle_s`` so their start-up is not counted as growth.
    """
    import psutil

    import yprov4ml_hpc as prov

    proc = psutil.Process()
    before = proc.memory_info().rss / 2**20
    kwargs: dict[str, Any] = {} if carbon else {"disable_codecarbon": True}
    run = prov.start_run("bench_rss", provenance_save_dir=str(workdir), **kwargs)
    after_start = proc.memory_info().rss / 2**20
    time.sleep(settle_s)
    after_settle = proc.memory_info().rss / 2**20
    method = run.log_metric
    checkpoints = sorted({start_points, *[10**k for k in range(1, 12)], end_points})
    checkpoints = [c for c in checkpoints if start_points <= c <= end_points]
    rss: dict[str, float] = {}
    done = 0
    t0 = time.perf_counter()
    for target in checkpoints:
        for i in range(done, target):
            method("loss", 0.5, "training", i)
        done = target
        gc.collect()
        rss[str(target)] = proc.memory_info().rss / 2**20
    elapsed = time.perf_counter() - t0
    prov.end_run()
    growth = rss[str(end_points)] - rss[str(start_points)]
    return {
        "codecarbon": carbon,
        "rss_mb_before_start_run": before,
        "rss_mb_after_start_run": after_start,
        "rss_mb_after_settle": after_settle,
        "settle_s": settle_s,
        "start_points": start_points,
        "end_points": end_points,
        "rss_mb_at": rss,
        "rss_growth_mb": growth,
        "seconds": elapsed,
    }


# --- import time and run lifecycle (fresh processes) --------------------------------------------
_IMPORT_CODE = (
    "import time, sys; {before}; t0 = time.perf_counter(); import {mod}; "
    "print(time.perf_counter() - t0, len(sys.modules))"
)


def _python(code: str, env: dict[str, str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return time.perf_counter() - t0, out.stdout.strip()


def bench_import(reps: int) -> dict[str, Any]:
    """``import yprov4ml_hpc`` in fresh interpreters, interleaved with ``import numpy, h5py``
    and with the import into a process that has NumPy already (any ML script has)."""
    env = clean_launcher_env(dict(os.environ))
    ours, deps, wall, wall_empty, after_numpy = [], [], [], [], []
    modules = 0
    for _ in range(reps):
        w, out = _python(_IMPORT_CODE.format(before="pass", mod="yprov4ml_hpc"), env)
        seconds, modules_text = out.split()
        ours.append(float(seconds))
        wall.append(w)
        modules = int(modules_text)
        _w, out = _python(_IMPORT_CODE.format(before="pass", mod="numpy, h5py"), env)
        deps.append(float(out.split()[0]))
        _w, out = _python(_IMPORT_CODE.format(before="import numpy", mod="yprov4ml_hpc"), env)
        after_numpy.append(float(out.split()[0]))
        w, _ = _python("pass", env)
        wall_empty.append(w)
    return {
        "reps": reps,
        "import_ms": median(ours) * 1e3,
        "import_ms_all": [round(s * 1e3, 2) for s in ours],
        "numpy_h5py_import_ms": median(deps) * 1e3,
        "own_share_ms": (median(ours) - median(deps)) * 1e3,
        "import_ms_with_numpy_loaded": median(after_numpy) * 1e3,
        "interpreter_wall_ms": median(wall) * 1e3,
        "empty_interpreter_wall_ms": median(wall_empty) * 1e3,
        "modules_loaded": modules,
    }


_LIFECYCLE_CODE = """
import json, sys, time
import yprov4ml_hpc as prov
t0 = time.perf_counter()
prov.start_run("bench_lifecycle", provenance_save_dir=sys.argv[1])
t1 = time.perf_counter()
for i in range(100):
    prov.log_metric("loss", 0.5, context="training", step=i)
t2 = time.perf_counter()
prov.end_run()
t3 = time.perf_counter()
print(json.dumps({"start_run_s": t1 - t0, "end_run_s": t3 - t2}))
"""


def bench_lifecycle(reps: int, workdir: Path) -> dict[str, Any]:
    """First start_run/end_run of a fresh process (cold) and repeated ones in one process (warm)."""
    import yprov4ml_hpc as prov

    env = clean_launcher_env(dict(os.environ))
    cold_start, cold_end, warm_start, warm_end = [], [], [], []
    for _ in range(reps):
        out = subprocess.run(
            [sys.executable, "-c", _LIFECYCLE_CODE, str(workdir)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        cold = json.loads(out.stdout.strip().splitlines()[-1])
        cold_start.append(cold["start_run_s"])
        cold_end.append(cold["end_run_s"])
        t0 = time.perf_counter()
        prov.start_run("bench_lifecycle_warm", provenance_save_dir=str(workdir))
        t1 = time.perf_counter()
        for i in range(100):
            prov.log_metric("loss", 0.5, context="training", step=i)
        t2 = time.perf_counter()
        prov.end_run()
        t3 = time.perf_counter()
        warm_start.append(t1 - t0)
        warm_end.append(t3 - t2)
    return {
        "reps": reps,
        "start_run_ms": median(cold_start) * 1e3,
        "end_run_ms": median(cold_end) * 1e3,
        "start_run_ms_warm": median(warm_start) * 1e3,
        "end_run_ms_warm": median(warm_end) * 1e3,
        "start_run_ms_all": [round(s * 1e3, 2) for s in cold_start],
        "end_run_ms_all": [round(s * 1e3, 2) for s in cold_end],
        "note": "cold = first run of a fresh process (singleton); warm = later runs in one process",
    }


# --- driver -------------------------------------------------------------------------------------
def _run_section_in_child(
    args: argparse.Namespace, section: str, workdir: Path, *extra: str
) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--section", section, "--workdir", str(workdir), *extra]
    cmd += ["--rss-start", str(args.rss_start), "--rss-points", str(args.rss_points)]
    cmd += ["--rss-settle", str(args.rss_settle)]
    out = subprocess.run(
        cmd, capture_output=True, text=True, env=clean_launcher_env(dict(os.environ)), check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def summarize(res: dict[str, Any]) -> dict[str, Any]:
    """The headline figures against the issue's targets."""
    lat = res["latency"]
    figures = {
        "p50_us": lat["api"]["p50_us"],
        "p99_us": lat["api"]["p99_us"],
        "p99_9_us": lat["api"]["p99_9_us"],
        "max_us": lat["api"]["max_us"],
        "mean_us": lat["mean_tight_loop"]["api_us"],
        "method_p50_us": lat["method"]["p50_us"],
        "method_p99_us": lat["method"]["p99_us"],
        "method_mean_us": lat["mean_tight_loop"]["method_us"],
        "log_metrics_us_per_point": lat["mean_tight_loop"]["log_metrics_us_per_point"],
        "timer_overhead_p50_us": lat["timer_overhead"]["p50_us"],
        "rss_growth_mb": res["rss"]["rss_growth_mb"],
        "rss_growth_mb_without_codecarbon": res["rss_without_codecarbon"]["rss_growth_mb"],
        "samplers_startup_rss_mb": res["rss"]["rss_mb_after_settle"] - res["rss"]["rss_mb_before_start_run"],
        "bytes_per_point": res["disk"]["bytes_per_point"],
        "import_ms": res["import"]["import_ms"],
        "start_run_ms": res["lifecycle"]["start_run_ms"],
        "end_run_ms": res["lifecycle"]["end_run_ms"],
    }
    met = {k: figures[k] <= target for k, target in TARGETS.items() if k in figures}
    return {"figures": figures, "targets": TARGETS, "met": met}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10**6, help="timed log_metric calls (default 1e6)")
    parser.add_argument("--blocks", type=int, default=50, help="interleaved blocks (default 50)")
    parser.add_argument("--rss-start", type=int, default=10**5)
    parser.add_argument("--rss-points", type=int, default=10**7)
    parser.add_argument("--rss-settle", type=float, default=5.0, help="seconds for samplers to start")
    parser.add_argument("--disk-points", type=int, default=10**6)
    parser.add_argument("--import-reps", type=int, default=7)
    parser.add_argument("--lifecycle-reps", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temp dir)")
    parser.add_argument("--out", default=None, help="write the JSON result here")
    parser.add_argument("--section", choices=["rss"], default=None, help=argparse.SUPPRESS)
    parser.add_argument("--no-carbon", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench_core_") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        if args.section == "rss":
            rss = bench_rss(args.rss_start, args.rss_points, workdir, args.rss_settle, not args.no_carbon)
            print(json.dumps(rss))
            return 0
        started = time.perf_counter()
        res: dict[str, Any] = {"benchmark": "core", "machine": machine_info(), "argv": sys.argv}
        res["rss"] = _run_section_in_child(args, "rss", workdir)
        if os.environ.get("YPROV4ML_HPC_CARBON") == "0":  # codecarbon is off anyway: same run
            res["rss_without_codecarbon"] = res["rss"]
        else:
            res["rss_without_codecarbon"] = _run_section_in_child(args, "rss", workdir, "--no-carbon")
        res["latency"] = bench_latency(args.calls, args.blocks, workdir)
        res["disk"] = bench_disk(args.disk_points, workdir)
        res["import"] = bench_import(args.import_reps)
        res["lifecycle"] = bench_lifecycle(args.lifecycle_reps, workdir)
        res["summary"] = summarize(res)
        res["seconds"] = time.perf_counter() - started
    write_json(args.out, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
