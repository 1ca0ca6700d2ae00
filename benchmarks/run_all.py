"""Run every benchmark, write ``results/*.json`` and ``results/RESULTS.md``.

usage:
    python benchmarks/run_all.py            # full run (several minutes on 2 cores)
    python benchmarks/run_all.py --quick    # smoke run with small sizes (about a minute)
    benchmarks/.venv/bin/python benchmarks/run_all.py   # with MLflow/W&B installed there

Each benchmark runs as its own subprocess (fresh interpreter, its own RSS and imports).
``bench_samplers.py`` and ``bench_finalize.py`` are run too when present; any JSON they
write into the results folder (``$YPROV4ML_BENCH_RESULTS_DIR``) is folded into the report.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import BENCH_DIR, RESULTS_DIR_ENV, machine_info, portable_paths, write_json

OWN = ("core", "hotpath", "overhead", "scale")
EXTERNAL = ("samplers", "finalize")  # written by other engineers: optional, run as they are

# Arguments per benchmark: the full run and the quick smoke run.
PROFILES: dict[str, dict[str, list[str]]] = {
    "full": {
        "core": [],
        "hotpath": [],
        "overhead": [],
        "scale": [],
        "samplers": [],
        "finalize": [],
    },
    "quick": {
        "core": [
            "--calls", "10000", "--blocks", "4", "--rss-start", "1000", "--rss-points", "50000",
            "--rss-settle", "1", "--disk-points", "20000", "--import-reps", "2", "--lifecycle-reps", "2",
        ],
        "hotpath": ["--calls", "5000", "--steps", "20", "--reps", "1"],
        "overhead": ["--steps", "20", "--reps", "2", "--calls", "20"],
        "scale": ["--ranks", "1,2", "--steps", "10"],
        "samplers": ["--quick"],
        "finalize": ["--quick"],
    },
    # Tiny sizes for tests/unit/test_benchmarks_smoke.py: checks the plumbing, not the numbers.
    "smoke": {
        "core": [
            "--calls", "2000", "--blocks", "2", "--rss-start", "1000", "--rss-points", "5000",
            "--rss-settle", "0", "--disk-points", "5000", "--import-reps", "1", "--lifecycle-reps", "1",
        ],
        "hotpath": ["--calls", "2000", "--steps", "5", "--reps", "1"],
        "overhead": ["--steps", "5", "--reps", "1", "--calls", "5"],
        "scale": ["--ranks", "1", "--steps", "5"],
        "samplers": ["--quick"],
        "finalize": ["--quick"],
    },
}


def _script(name: str) -> Path:
    return BENCH_DIR / f"bench_{name}.py"


def _accepts(script: Path, option: str) -> bool:
    """Whether a peer's script mentions ``option`` (we pass --quick only where it exists)."""
    try:
        return option in script.read_text(encoding="utf-8")
    except OSError:
        return False


def run_one(
    name: str, args: list[str], python: str, results_dir: Path, timeout_s: float
) -> dict[str, Any]:
    """Run ``bench_<name>.py`` in a subprocess; return its status and JSON (if any)."""
    script = _script(name)
    out_json = results_dir / f"{name}.json"
    cmd = [python, str(script)]
    if name in EXTERNAL:
        cmd += [a for a in args if _accepts(script, a)]
        if _accepts(script, "--out"):  # keep a peer's own default output untouched
            cmd += ["--out", str(out_json)]
    else:
        cmd += [*args, "--out", str(out_json)]
    env = dict(os.environ)
    env[RESULTS_DIR_ENV] = str(results_dir)
    log_path = results_dir / f"{name}.log"
    started_wall = time.time()
    t0 = time.perf_counter()
    print(f"[run_all] {name}: {shlex.join(cmd)}", flush=True)
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=env, timeout=timeout_s, cwd=BENCH_DIR.parent, check=False
        )
        returncode, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        returncode, stdout, stderr = -1, str(exc.stdout or ""), f"timed out after {timeout_s} s"
    seconds = time.perf_counter() - t0
    log_path.write_text(f"$ {shlex.join(cmd)}\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n")
    status: dict[str, Any] = {
        "command": shlex.join(cmd),
        "returncode": returncode,
        "seconds": round(seconds, 2),
        "log": log_path.name,
    }
    print(f"[run_all] {name}: exit {returncode} in {seconds:.1f} s", flush=True)
    if returncode != 0:
        status["error"] = (stderr or stdout)[-1500:]
    if name in EXTERNAL and not out_json.exists():
        status["json_files"] = _fresh_json(results_dir, started_wall)
    elif out_json.exists():
        status["json_files"] = [out_json.name]
    return status


def _fresh_json(results_dir: Path, since: float) -> list[str]:
    """JSON files a peer's script wrote into the results folders during its run."""
    found = []
    for folder in {results_dir, BENCH_DIR / "results"}:
        for path in sorted(folder.glob("*.json")):
            if path.stem in OWN or path.stem == "run_all" or path.stat().st_mtime < since - 1:
                continue
            found.append(str(path.relative_to(folder)) if folder == results_dir else str(path))
    return found


# --- the markdown report ------------------------------------------------------------------------
def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 100:
            return f"{value:.1f}"
        return f"{value:.{digits}g}" if abs(value) < 1 else f"{value:.{digits}g}".rstrip(".")
    return str(value)


def _load(results_dir: Path, name: str) -> dict[str, Any] | None:
    path = results_dir / f"{name}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _core_md(core: dict[str, Any]) -> list[str]:
    s, lat = core["summary"], core["latency"]
    f, t, met = s["figures"], s["targets"], s["met"]
    rows = [
        ("log_metric p50 (module API, keyword args)", f["p50_us"], "us", "p50_us"),
        ("log_metric p99", f["p99_us"], "us", "p99_us"),
        ("log_metric p99.9", f["p99_9_us"], "us", None),
        ("log_metric max", f["max_us"], "us", None),
        ("log_metric mean incl. flushes (tight loop - bare loop)", f["mean_us"], "us", "mean_us"),
        ("Run.log_metric p50 / p99 (bound method, positional)",
         f"{_fmt(f['method_p50_us'])} / {_fmt(f['method_p99_us'])}", "us", None),
        ("Run.log_metric mean incl. flushes", f["method_mean_us"], "us", None),
        ("log_metrics, per point (10 metrics per call)", f["log_metrics_us_per_point"], "us", None),
        ("timer overhead subtracted (two perf_counter_ns, p50)", f["timer_overhead_p50_us"], "us", None),
        ("RSS growth, 1e5 -> 1e7 points of one series", f["rss_growth_mb"], "MB", "rss_growth_mb"),
        ("RSS growth, same, codecarbon off", f["rss_growth_mb_without_codecarbon"], "MB", None),
        ("RSS taken by start_run + sampler start-up (not growth)", f["samplers_startup_rss_mb"], "MB", None),
        ("bytes on disk per point (1e6-point series)", f["bytes_per_point"], "B", "bytes_per_point"),
        ("import yprov4ml_hpc (fresh interpreter, median)", f["import_ms"], "ms", "import_ms"),
        ("start_run, singleton, first in process (median)", f["start_run_ms"], "ms", "start_run_ms"),
        ("end_run, singleton, first in process (median)", f["end_run_ms"], "ms", None),
    ]
    out = ["| figure | measured | target | met |", "|---|---|---|---|"]
    for label, value, unit, key in rows:
        target = f"<= {_fmt(t[key])} {unit}" if key else ""
        ok = _fmt(met[key]) if key else ""
        out.append(f"| {label} | {_fmt(value)} {unit} | {target} | {ok} |")
    mt = lat["mean_tight_loop"]
    imp = core["import"]
    out += [
        "",
        f"{lat['calls']:,} timed calls per API in {lat['blocks']} interleaved blocks "
        f"(timer-only, module API, bound method); ring size {lat['buffer_size']}, "
        f"{lat['flushes_during_latency']} flushes during the timed calls, "
        f"{mt['flushes']} during the tight loops ({_fmt(mt['flush_us_per_point'])} us of flush per point). "
        f"Bare loop: {_fmt(mt['bare_loop_ns_per_iter'])} ns/iteration. "
        f"Import: numpy + h5py alone take {_fmt(imp['numpy_h5py_import_ms'])} ms of the "
        f"{_fmt(imp['import_ms'])} ms (into a process that already has NumPy: "
        f"{_fmt(imp.get('import_ms_with_numpy_loaded'))} ms); warm start_run/end_run in one process: "
        f"{_fmt(core['lifecycle']['start_run_ms_warm'])} / {_fmt(core['lifecycle']['end_run_ms_warm'])} ms.",
    ]
    return out


def _overhead_md(ov: dict[str, Any]) -> list[str]:
    cfg, tools = ov["config"], ov["tools"]
    out = [
        f"{cfg['steps']} steps x {cfg['reps']} alternating runs per tool, {cfg['metrics_per_step']} metrics "
        f"per step, then {cfg['calls_per_run']} single-metric calls per run; model: {cfg['model']}.",
        "",
        "| tool | version | slowdown % (median loop) | paired % | interleaved % | direct % | step ms | "
        "log/step p50 / p99 us | call p50 / p99 / p99.9 / max us | B/point | files/rank | "
        "start / end s | import s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, t in tools.items():
        if not t.get("available") or "runs" not in t:
            reason = t.get("reason") or t.get("error") or "not run"
            out.append(f"| {name} | {t.get('version') or ''} | not measured: {reason} |" + " |" * 10)
            continue
        step, call = t["log_per_step"], t["per_call"]
        out.append(
            f"| {name} | {t.get('version') or ''} | {_fmt(t.get('slowdown_pct'))} | "
            f"{_fmt(t.get('slowdown_pct_paired_median'))} | {_fmt(t.get('interleaved_slowdown_pct'))} | "
            f"{_fmt(t['direct_overhead_pct'])} | "
            f"{_fmt(t['step_ms_median'])} | {_fmt(step['p50_us'])} / {_fmt(step['p99_us'])} | "
            f"{_fmt(call['p50_us'])} / {_fmt(call['p99_us'])} / {_fmt(call['p99_9_us'])} / "
            f"{_fmt(call['max_us'])} | {_fmt(t['bytes_per_point'])} | {_fmt(t['files_per_rank'])} | "
            f"{_fmt(t['start_s_median'])} / {_fmt(t['end_s_median'])} | {_fmt(t.get('import_s'))} |"
        )
    base = tools.get("none", {})
    if "baseline_spread_pct" in base:
        spread = _fmt(base["baseline_spread_pct"])
        out += [
            "",
            f"Baseline loop spread over its runs, (max - min) / median: {spread} %. Where it is large "
            "(a shared machine), read the interleaved and direct columns: they compare logging and "
            "no logging within the same ~50 ms, so load changes cancel out.",
        ]
    ratios = ov.get("ratios_vs_yprov4ml_hpc") or {}
    if ratios:
        out += ["", "| peer / yprov4ml_hpc | call p50 | call p99 | per-step mean |", "|---|---|---|---|"]
        for name, r in ratios.items():
            cells = (_fmt(r["per_call_p50"]), _fmt(r["per_call_p99"]), _fmt(r["per_step_mean"]))
            out.append(f"| {name} | " + " | ".join(f"{c}x" for c in cells) + " |")
    apis = [f"{n}: per step `{t['per_step_api']}`, per call `{t['per_call_api']}`"
            for n, t in tools.items() if n != "none" and t.get("available")]
    if apis:
        out += ["", "Calls: " + "; ".join(apis) + "."]
    return out


def _scale_md(sc: dict[str, Any]) -> list[str]:
    if "skipped" in sc:
        return [f"Skipped: {sc['skipped']}"]
    out = [
        f"`{sc['config'].get('command', '')}` ({sc['config'].get('mpiexec_version', '')}), "
        f"{sc['config']['steps']} steps x 10 metrics per rank.",
        "",
        "| ranks | start_run max / median ms | end_run max / median ms | import max s | "
        "mpiexec wall s | rank files |",
        "|---|---|---|---|---|---|",
    ]
    for launch in sc.get("launches", []):
        if not launch.get("ok"):
            out.append(f"| {launch['ranks']} | failed: {str(launch.get('error', ''))[-120:]!r} | | | | |")
            continue
        out.append(
            f"| {launch['ranks']} | {_fmt(launch['start_run_s_max'] * 1e3)} / "
            f"{_fmt(launch['start_run_s_median'] * 1e3)} | {_fmt(launch['end_run_s_max'] * 1e3)} / "
            f"{_fmt(launch['end_run_s_median'] * 1e3)} | {_fmt(launch['import_s_max'])} | "
            f"{_fmt(launch['mpiexec_wall_s'])} | {launch['rank_files']} |"
        )
    return out


def _hotpath_md(hp: dict[str, Any]) -> list[str]:
    out = ["| operation / variant | warm ns | after a training step ns |", "|---|---|---|"]
    for row in hp.get("rows", []):
        out.append(f"| {row['name']} | {_fmt(row.get('warm_ns'))} | {_fmt(row.get('cold_ns'))} |")
    if hp.get("note"):
        out += ["", hp["note"]]
    return out


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        items: list[tuple[str, Any]] = []
        for key, sub in value.items():
            if key in ("machine", "argv"):
                continue
            items += _flatten(sub, f"{prefix}{key}.")
        return items
    if isinstance(value, (int, float, str, bool)) or value is None:
        return [(prefix.rstrip("."), value)]
    return []


def _external_md(results_dir: Path, files: list[str]) -> list[str]:
    out: list[str] = []
    for name in files:
        path = Path(name) if Path(name).is_absolute() else results_dir / name
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        out += [f"`{path.name}`:", ""]
        markdown = data.pop("markdown", None) if isinstance(data, dict) else None
        if isinstance(markdown, str):  # a peer's own table: quoted as it wrote it
            out += [markdown.strip(), ""]
            continue
        rows = _flatten(data)[:60]
        out += ["| key | value |", "|---|---|"]
        out += [f"| {k} | {_fmt(v).replace('|', '/')} |" for k, v in rows]
        out.append("")
    return out


def write_markdown(results_dir: Path, meta: dict[str, Any]) -> Path:
    """RESULTS.md: machine, command, then one section per benchmark that produced JSON."""
    m = meta["machine"]
    v = m.get("versions", {})
    versions = ", ".join(f"{k} {val}" for k, val in v.items())
    lines = [
        "# Benchmark results",
        "",
        f"- Machine: {m['cpu_model']}, {m['logical_cores']} logical cores "
        f"({m['physical_cores']} physical), {m['memory_gb']} GB RAM, {m['platform']}",
        f"- Python {m['python']}; {versions}",
        f"- Commit {m['git']}, {m['date_utc']}; load average at start {[round(x, 2) for x in m['loadavg']]}, "
        f"at end {meta.get('loadavg_end')} (a shared machine: see the baseline spread)",
        f"- Command: `{meta['command']}` ({meta['profile']} profile, {meta['seconds']:.0f} s)",
        "",
    ]
    sections = (
        ("core", "Core costs (issue 2)", _core_md),
        ("overhead", "Logging overhead in a training loop (issue 6)", _overhead_md),
        ("scale", "start_run / end_run under mpiexec (issue 6)", _scale_md),
        ("hotpath", "Where a log_metric call spends its time", _hotpath_md),
    )
    for name, title, render in sections:
        status = meta["benchmarks"].get(name)
        if status is None:
            continue
        lines += [f"## {title}", ""]
        data = _load(results_dir, name)
        if data is None:
            lines += [f"Failed (exit {status['returncode']}); see `{status['log']}`.", ""]
            continue
        try:
            lines += render(data)
        except (KeyError, TypeError) as exc:
            lines.append(f"(could not render: {type(exc).__name__}: {exc}; see `{name}.json`)")
        lines.append("")
    for name in EXTERNAL:
        status = meta["benchmarks"].get(name)
        if status is None:
            continue
        lines += [f"## bench_{name}.py", "", f"`{status['command']}`: exit {status['returncode']}.", ""]
        lines += _external_md(results_dir, status.get("json_files", []))
    path = results_dir / "RESULTS.md"
    path.write_text(portable_paths("\n".join(lines)).rstrip() + "\n")  # committed: no machine paths
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run every benchmark and write results/RESULTS.md.")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--profile", choices=sorted(PROFILES), default=None, help="sizes (overrides --quick)")
    parser.add_argument(
        "--only", default=None, help=f"comma-separated subset of {','.join(OWN + EXTERNAL)}"
    )
    parser.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results")
    parser.add_argument(
        "--overhead-python",
        default=sys.executable,
        help="interpreter for bench_overhead.py (e.g. a venv with mlflow/wandb/yprov4ml)",
    )
    parser.add_argument("--tools", default=None, help="passed to bench_overhead.py --tools")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per benchmark")
    parser.add_argument(
        "--report-only", action="store_true", help="rewrite RESULTS.md from the JSON already in --results-dir"
    )
    args = parser.parse_args(argv)
    if args.report_only:
        meta = json.loads((args.results_dir / "run_all.json").read_text())
        print(write_markdown(args.results_dir.resolve(), meta).read_text())
        return 0

    profile = args.profile or ("quick" if args.quick else "full")
    names = [n for n in OWN + EXTERNAL if _script(n).exists()]
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = sorted(set(wanted) - set(OWN + EXTERNAL))
        if unknown:
            parser.error(f"unknown benchmarks {unknown}")
        names = [n for n in names if n in wanted]
    results_dir = args.results_dir.resolve()
    results_dir.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {
        "command": shlex.join([sys.executable, *sys.argv]),
        "cwd": os.getcwd(),
        "profile": profile,
        "machine": machine_info(),
        "benchmarks": {},
    }
    started = time.perf_counter()
    for name in names:
        bench_args = list(PROFILES[profile][name])
        if name == "overhead" and args.tools:
            bench_args += ["--tools", args.tools]
        python = args.overhead_python if name == "overhead" else sys.executable
        meta["benchmarks"][name] = run_one(name, bench_args, python, results_dir, args.timeout)
    meta["seconds"] = time.perf_counter() - started
    try:
        meta["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        meta["loadavg_end"] = None
    report = write_markdown(results_dir, meta)
    meta["report"] = report.name
    write_json(results_dir / "run_all.json", meta)
    print(report.read_text())
    failed = [n for n, s in meta["benchmarks"].items() if s["returncode"] != 0 and n in OWN]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
