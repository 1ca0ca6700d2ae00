"""Cost of one sample of each background sampler (microseconds), to document the defaults.

    python benchmarks/bench_samplers.py [--out benchmarks/results/samplers.json]
                                        [--repeats 7] [--calls 200] [--overhead]
                                        [--gpu-check SECONDS]

Each row is the median over ``--repeats`` runs of the mean cost of ``--calls`` consecutive
samples. Rows for the real NVML driver, RAPL and codecarbon appear where they are usable.
``--overhead`` also times a CPU-bound loop with the sampler thread off, at its default
interval and at 0.1 s (one process, interleaved, 9 repeats), the issue's < 1 % target; it
needs a quiet machine (a 1 s loop sees no tick at the 10 s default: that column shows the
start-up cost and the noise floor). The printed "share of one core" is the analytic bound.
``--gpu-check`` (GPU machines) compares the sampler's energy with the NVML counter read directly.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import portable_paths

from yprov4ml_hpc._constants import DEFAULT_SYSTEM_METRICS_INTERVAL_S
from yprov4ml_hpc._samplers import SamplerSet
from yprov4ml_hpc._samplers._carbon import CarbonSampler, codecarbon_installed
from yprov4ml_hpc._samplers._gpu import GpuSampler
from yprov4ml_hpc._samplers._nvml import PynvmlBackend, ReplayBackend
from yprov4ml_hpc._samplers._process import NodeSampler, ProcessSampler
from yprov4ml_hpc._samplers._rapl import RaplSampler

REPO = Path(__file__).resolve().parents[1]
TRACE = REPO / "tests" / "fixtures" / "nvml" / "h100_trace.json"


def per_call_us(fn: Callable[[], Any], calls: int, repeats: int) -> dict[str, float]:
    fn()  # warm-up (first psutil/NVML calls open files and handles)
    means = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        for _ in range(calls):
            fn()
        means.append((time.perf_counter_ns() - t0) / calls / 1000)
    return {"median_us": statistics.median(means), "min_us": min(means), "max_us": max(means)}


def sampler_cases(calls: int) -> dict[str, tuple[Callable[[], Any], int]]:
    """name -> (one sample, calls per repeat); expensive samplers get fewer calls."""
    process, node = ProcessSampler(), NodeSampler()
    cases: dict[str, tuple[Callable[[], Any], int]] = {
        "psutil process (2 series)": (process.read, calls),
        "psutil node (7 series)": (node.read, calls),
    }
    if TRACE.exists():
        replay = GpuSampler(ReplayBackend(TRACE, lambda: 5_000_000_000), [0], print)
        cases["NVML replay, cheap queries, 1 GPU"] = (lambda: replay.read(0), calls)
        cases["NVML replay, energy counter, 1 GPU"] = (lambda: replay.read_energy(0), calls)
    try:
        import pynvml

        backend = PynvmlBackend(pynvml)
        gpus = list(range(backend.device_count()))
        real = GpuSampler(backend, gpus, print)
        cases[f"NVML real, cheap queries, {len(gpus)} GPU(s)"] = (lambda: real.read(0), calls)
        cases[f"NVML real, energy counter, {len(gpus)} GPU(s)"] = (lambda: real.read_energy(0), 20)
    except Exception as exc:
        print(f"(no real NVML here: {type(exc).__name__}: {exc})", file=sys.stderr)
    rapl, why = RaplSampler.open()
    if rapl is not None:
        cases["RAPL packages"] = (rapl.read_energy, calls)
    elif why:
        print(f"(no RAPL: {why})", file=sys.stderr)
    rows: list[Any] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = SamplerSet(lambda *r: rows.append(r), interval_s=0, carbon=False)
        full.start()

    def sample_now() -> None:  # what log_system_metrics costs the caller, records included
        full.sample_now()
        rows.clear()

    cases["SamplerSet.sample_now (all that apply here)"] = (sample_now, calls)
    return cases


def carbon_case(calls: int, repeats: int) -> dict[str, float] | None:
    if not codecarbon_installed():
        return None
    carbon = CarbonSampler("USA", None, 15.0)
    t0 = time.perf_counter()
    if carbon.start() is not None:
        return None
    start_s = time.perf_counter() - t0
    try:
        return {**per_call_us(carbon.read, calls, repeats), "start_s": start_s}
    finally:
        carbon.stop()


def cpu_loop(seconds_hint: float) -> float:
    """A fixed amount of pure-Python work; returns its wall time (s)."""
    t0 = time.perf_counter()
    acc = 0
    for i in range(int(seconds_hint * 12_000_000)):
        acc += i * i % 7
    return time.perf_counter() - t0


def overhead(repeats: int = 9, work_s: float = 1.0) -> dict[str, Any]:
    """Loop time with the sampler thread off / on, interleaved so that they share the noise.

    Reports the median and the minimum over repeats: on a shared machine the minimum is the
    better estimate of the intrinsic cost, the median shows the noise.
    """
    times: dict[str, list[float]] = {"off": [], "default": [], "0.1s": []}
    intervals = {"default": DEFAULT_SYSTEM_METRICS_INTERVAL_S, "0.1s": 0.1}
    cpu_loop(0.2)
    for _ in range(repeats):
        times["off"].append(cpu_loop(work_s))
        for label, interval in intervals.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sampler = SamplerSet(lambda *r: None, interval_s=interval, carbon=False)
                sampler.start()
            times[label].append(cpu_loop(work_s))
            sampler.stop()
    med = {k: statistics.median(v) for k, v in times.items()}
    low = {k: min(v) for k, v in times.items()}
    return {
        "loop_s_median": med,
        "loop_s_min": low,
        "slowdown_pct_median": {k: 100 * (med[k] / med["off"] - 1) for k in intervals},
        "slowdown_pct_min": {k: 100 * (low[k] / low["off"] - 1) for k in intervals},
        "repeats": repeats,
    }


def gpu_check(seconds: float) -> dict[str, Any] | None:
    """On a GPU machine: the sampler's NVML energy vs the counter difference read directly.

    A bf16 matmul load runs on GPU 0 when torch is there (else the GPUs idle). The sampler's
    window starts a few ms after the direct first read and ends a few ms before the last one,
    so expect agreement to ~0.1 % rather than exactly.
    """
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as exc:
        print(f"(--gpu-check: no NVML here: {exc})", file=sys.stderr)
        return None
    handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
    direct0 = [pynvml.nvmlDeviceGetTotalEnergyConsumption(h) for h in handles]
    sampler = SamplerSet(lambda *r: None, interval_s=1.0, carbon=False)
    sampler.start()
    end = time.monotonic() + seconds
    try:
        import torch

        a = torch.randn(8192, 8192, device="cuda:0", dtype=torch.bfloat16)
        while time.monotonic() < end:
            a @ a  # the GPU work itself; the result is not needed
            torch.cuda.synchronize()
    except ImportError:
        time.sleep(max(end - time.monotonic(), 0.0))
    sampler.stop()
    direct1 = [pynvml.nvmlDeviceGetTotalEnergyConsumption(h) for h in handles]
    pynvml.nvmlShutdown()
    energy = sampler.energy_j()
    report = {}
    for i in sampler.gpus:
        direct_j = (direct1[i] - direct0[i]) / 1000
        sampled_j = energy[f"gpu{i}/energy_j"]
        report[f"gpu{i}"] = {
            "sampler_j": sampled_j,
            "direct_j": direct_j,
            "diff_pct": 100 * (sampled_j / direct_j - 1),
        }
    return {"seconds": seconds, "gpus": report, "methods": sampler.methods}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "samplers.json")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument(
        "--overhead", action="store_true", help="also time a CPU-bound loop with samplers on/off"
    )
    parser.add_argument(
        "--gpu-check", type=float, metavar="SECONDS", help="real GPU: sampler vs direct energy"
    )
    args = parser.parse_args(argv)

    load_at_start = os.getloadavg()[0]
    results: dict[str, dict[str, float]] = {}
    for name, (fn, calls) in sampler_cases(args.calls).items():
        results[name] = {**per_call_us(fn, calls, args.repeats), "calls": calls}
    carbon = carbon_case(20, args.repeats)
    if carbon is not None:
        results["codecarbon flush (node leader), warm"] = {**carbon, "calls": 20}

    print(f"| sampler | median us/sample | min | max | calls x {args.repeats} |")
    print("|---|---:|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['median_us']:.1f} | {r['min_us']:.1f} | {r['max_us']:.1f} | {r['calls']:.0f} |")
    if carbon is not None:
        print(f"\ncodecarbon tracker start (on the sampler thread): {carbon['start_s']:.2f} s")
    # Upper bound of the thread's share of one core: one tick costs about one sample_now.
    tick_us = results["SamplerSet.sample_now (all that apply here)"]["median_us"]
    share = {f"{i:g}s": 100 * tick_us / 1e6 / i for i in (DEFAULT_SYSTEM_METRICS_INTERVAL_S, 1.0, 0.1)}
    print("sampler thread, share of one core per interval (%):", {k: round(v, 4) for k, v in share.items()})
    report: dict[str, Any] = {
        "benchmark": "samplers_cost_per_sample",
        "unit": "us",
        "results": results,
        "thread_share_of_one_core_pct": share,
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_avg_1min_at_start": load_at_start,  # the numbers are noisy when this is high
        },
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
    }
    if args.overhead:
        report["overhead"] = over = overhead()
        for stat in ("median", "min"):
            loop = {k: round(v, 4) for k, v in over[f"loop_s_{stat}"].items()}
            slow = {k: round(v, 2) for k, v in over[f"slowdown_pct_{stat}"].items()}
            print(f"CPU-bound loop, {stat} of {over['repeats']}: {loop} s; slowdown vs off: {slow} %")
    if args.gpu_check:
        report["gpu_check"] = check = gpu_check(args.gpu_check)
        print("\nGPU energy check:", json.dumps(check, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(portable_paths(report), indent=1) + "\n")  # committed: no machine paths
    print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
