"""The benchmark suite runs end to end at tiny sizes and writes the JSON keys the report reads.

No timing is asserted here (DESIGN section 7): numbers live in benchmarks/results/.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_run_all_smoke_profile_writes_results(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMPI_", "SLURM_"))}
    env["YPROV4ML_HPC_CARBON"] = "0"  # codecarbon's 1 s start per run is not what this checks
    cmd = [
        sys.executable, str(REPO / "benchmarks" / "run_all.py"), "--profile", "smoke",
        "--only", "core,hotpath,overhead,scale", "--tools", "none,yprov4ml_hpc",
        "--results-dir", str(tmp_path),
    ]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=180, env=env, cwd=tmp_path, check=False
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    core = json.loads((tmp_path / "core.json").read_text())
    figures = core["summary"]["figures"]
    for key in ("p50_us", "p99_us", "p99_9_us", "max_us", "mean_us", "log_metrics_us_per_point",
                "rss_growth_mb", "bytes_per_point", "import_ms", "start_run_ms", "end_run_ms"):
        assert isinstance(figures[key], float), key
    assert set(core["summary"]["met"]) <= set(core["summary"]["targets"])
    assert core["latency"]["timer_overhead"]["n"] == core["latency"]["calls"]

    overhead = json.loads((tmp_path / "overhead.json").read_text())
    ours = overhead["tools"]["yprov4ml_hpc"]
    for key in ("slowdown_pct", "interleaved_slowdown_pct", "direct_overhead_pct", "log_per_step",
                "per_call", "bytes_per_point", "files_per_rank", "start_s_median", "end_s_median"):
        assert key in ours, key
    assert {"p50_us", "p99_us", "p99_9_us", "max_us"} <= set(ours["per_call"])
    assert "none" in overhead["tools"]

    scale = json.loads((tmp_path / "scale.json").read_text())
    if "skipped" not in scale:  # no mpiexec on this machine: the benchmark says so and stops
        launch = scale["launches"][0]
        assert launch["ok"], launch
        assert launch["rank_files"] == 1
        assert {"start_run_s_max", "end_run_s_max", "start_run_s_median"} <= set(launch)

    hotpath = json.loads((tmp_path / "hotpath.json").read_text())
    assert any(row["name"].startswith("yprov4ml_hpc.log_metric") for row in hotpath["rows"])

    run_all = json.loads((tmp_path / "run_all.json").read_text())
    assert run_all["profile"] == "smoke"
    assert {"cpu_model", "logical_cores", "python", "versions"} <= set(run_all["machine"])
    report = (tmp_path / "RESULTS.md").read_text()
    for title in ("## Core costs", "## Logging overhead", "## start_run / end_run", "Command:"):
        assert title in report


def _absolute_paths(text: str) -> list[str]:
    """Tokens of ``text`` that are absolute paths (``/x/...``)."""
    return [t for t in re.split(r"[\s`'\"=(),;|\[\]{}]+", text) if re.match(r"/[\w.~-]", t)]


def test_committed_results_name_no_machine_paths() -> None:
    results = REPO / "benchmarks" / "results"
    found = {
        path.name: _absolute_paths(path.read_text(encoding="utf-8"))
        for path in sorted(results.iterdir())
        if path.suffix in (".json", ".md")
    }
    assert len(found) >= 2 and all(not paths for paths in found.values()), found


def test_results_writer_makes_paths_relative_to_the_repository() -> None:
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from _common import portable_paths
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    payload = {
        "argv": ["/srv/repo/benchmarks/bench_x.py", "--out", "/srv/repo/benchmarks/results/x.json"],
        "cwd": "/srv/repo",
        "command": "/home/u/.venv/bin/python /srv/repo/benchmarks/run_all.py",
        "run_dir": "/scratch/tmp/bench_1/n1/run",
        "other": "/srv/repo2/file 1/2 µs/step",
    }
    out = portable_paths(payload, repo="/srv/repo", tmp="/scratch/tmp", home="/home/u")
    assert out == {
        "argv": ["benchmarks/bench_x.py", "--out", "benchmarks/results/x.json"],
        "cwd": ".",
        "command": "~/.venv/bin/python benchmarks/run_all.py",
        "run_dir": "$TMPDIR/bench_1/n1/run",
        "other": "/srv/repo2/file 1/2 µs/step",  # another folder that merely starts alike
    }
    assert _absolute_paths(json.dumps(portable_paths({"p": str(REPO / "benchmarks")}))) == []
