"""Helpers shared by the benchmark scripts: statistics, machine facts, JSON output.

Every benchmark script runs standalone (``python benchmarks/bench_x.py --out f.json``) and
imports this module from its own folder.  Nothing here is imported by the package.
"""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_DIR_ENV = "YPROV4ML_BENCH_RESULTS_DIR"  # where peers' benchmark scripts may write JSON

# One BLAS thread: the step time of the synthetic training loop must not depend on how many
# of the two shared cores happen to be free.  Set before NumPy is imported anywhere.
SINGLE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
for _name, _value in SINGLE_THREAD_ENV.items():
    os.environ.setdefault(_name, _value)

PERCENTILES = {"p50": 50.0, "p99": 99.0, "p99_9": 99.9}


def distribution(samples_ns: Any, subtract_ns: float = 0.0) -> dict[str, float]:
    """p50/p99/p99.9/max/mean of nanosecond samples, in microseconds, minus ``subtract_ns``."""
    import numpy as np

    data = np.asarray(samples_ns, dtype=np.float64)
    if data.size == 0:
        return {"n": 0}
    out: dict[str, float] = {"n": int(data.size)}
    for name, q in PERCENTILES.items():
        out[f"{name}_us"] = (float(np.percentile(data, q)) - subtract_ns) / 1e3
    out["max_us"] = (float(data.max()) - subtract_ns) / 1e3
    out["mean_us"] = (float(data.mean()) - subtract_ns) / 1e3
    return out


def median(values: Iterable[float]) -> float:
    items = list(values)
    return float(statistics.median(items)) if items else float("nan")


def rotate(items: Sequence[Any], shift: int) -> list[Any]:
    """``items`` rotated left by ``shift``: alternating orders across repetitions."""
    if not items:
        return []
    shift %= len(items)
    return list(items[shift:]) + list(items[:shift])


def dir_usage(path: Path) -> tuple[int, int]:
    """(bytes, files) of every regular file under ``path``."""
    total = files = 0
    if path.is_file():
        return path.stat().st_size, 1
    for root, _dirs, names in os.walk(path):
        for name in names:
            full = Path(root, name)
            if full.is_file() and not full.is_symlink():
                total += full.stat().st_size
                files += 1
    return total, files


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine_info() -> dict[str, Any]:
    """The facts a reader needs to compare numbers: CPU, cores, load, library versions."""
    import psutil

    try:
        load = list(os.getloadavg())
    except OSError:
        load = []
    versions = {
        name: package_version(name)
        for name in (
            "yprov4ml-hpc", "numpy", "h5py", "psutil", "mpi4py", "mpich", "mlflow", "wandb", "yprov4ml",
        )
    }
    try:
        import h5py

        versions["hdf5"] = h5py.version.hdf5_version
    except ImportError:
        pass
    return {
        "cpu_model": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "versions": {k: v for k, v in versions.items() if v is not None},
        "git": _git_commit(),
        "loadavg": [round(x, 2) for x in load],
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def portable_paths(
    value: Any, repo: str | os.PathLike[str] = REPO, tmp: str | None = None, home: str | None = None
) -> Any:
    """``value`` (JSON-like) with machine-specific paths in every string made portable, so
    committed results say nothing about the machine's layout: the repository's own path
    becomes relative to it (``/x/repo/benchmarks/a.py`` -> ``benchmarks/a.py``, ``/x/repo``
    -> ``.``), the temporary folder ``$TMPDIR`` and the home folder ``~``."""
    rules = []
    for prefix, replacement in (
        (str(repo), "."),
        (tmp or tempfile.gettempdir(), "$TMPDIR"),
        (home or os.path.expanduser("~"), "~"),
    ):
        if prefix and prefix != "/":
            # The prefix as a whole path component only: /x/repo2 is not under /x/repo.
            rules.append((re.compile(re.escape(prefix.rstrip("/")) + r"(/|(?=[\s\"'`:;,)]|$))"), replacement))

    def fix(text: str) -> str:
        for pattern, replacement in rules:
            text = pattern.sub(
                lambda m, r=replacement: "" if r == "." and m.group(1) else r + m.group(1), text
            )
        return text

    if isinstance(value, str):
        return fix(value)
    if isinstance(value, dict):
        return {
            fix(k) if isinstance(k, str) else k: portable_paths(v, repo, tmp, home) for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [portable_paths(v, repo, tmp, home) for v in value]
    return value


def write_json(path: str | os.PathLike[str] | None, payload: dict[str, Any]) -> None:
    """Write ``payload`` as JSON to ``path`` (atomically) and always echo it to stdout.
    Paths are made portable first (:func:`portable_paths`): results get committed."""
    text = json.dumps(portable_paths(payload), indent=2, sort_keys=False, default=str)
    if path:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_text(text + "\n")
        tmp.replace(target)
    print(text)


def write_results(path: str | os.PathLike[str] | None, benchmark: str, markdown: str, **fields: Any) -> None:
    """The usual results file of a benchmark: its name, the command, the machine (with its
    load), the given fields and the markdown table, which also goes to stderr."""
    payload = {
        "benchmark": benchmark,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine_info(),
        "load_average": os.getloadavg(),
        **fields,
        "markdown": markdown,
    }
    print(markdown, file=sys.stderr)
    write_json(path, payload)


def clean_launcher_env(env: dict[str, str]) -> dict[str, str]:
    """A copy of ``env`` without MPI/Slurm/torchrun variables, so a child runs as a singleton."""
    prefixes = ("OMPI_", "PMI_", "PMIX_", "MPI_LOCAL", "SLURM_", "HYDRA_", "MPIR_")
    exact = {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "TORCHELASTIC_RUN_ID"}
    return {k: v for k, v in env.items() if k not in exact and not k.startswith(prefixes)}
