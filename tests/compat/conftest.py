"""Helpers for the yProv4ML compatibility tests: run a script as a user would, check its output."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = Path(__file__).parent / "scripts"
SCRIPT_TIMEOUT_S = 300


def script_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    env["YPROV4ML_HPC_CARBON"] = "0"  # codecarbon's start costs ~1.3 s per run
    env["YPROV4ML_HPC_SYSTEM_METRICS_INTERVAL_S"] = "0"
    env.pop("YPROV4ML_HPC_SAVE_DIR", None)
    for name in ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "SLURM_PROCID", "RANK", "WORLD_SIZE"):
        env.pop(name, None)  # the scripts must detect their own launcher
    return env


def run_script(
    name: str, cwd: Path, *args: str, ranks: int = 1, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run tests/compat/scripts/<name> in ``cwd`` (its ./prov is the save directory)."""
    command = [sys.executable, str(SCRIPTS / name), *args]
    if ranks > 1:
        mpiexec = shutil.which("mpiexec")
        if mpiexec is None:
            pytest.skip("mpiexec is not installed")
        command = ["timeout", str(SCRIPT_TIMEOUT_S), mpiexec, "-n", str(ranks), *command]
    result = subprocess.run(
        command,
        cwd=cwd,
        env=script_env(),
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT_S + 30,
        check=False,
    )
    if check:
        assert result.returncode == 0, (
            f"{name} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result


def only_run_dir(save_dir: Path) -> Path:
    runs = [p for p in save_dir.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def check_document(run_dir: Path) -> dict[str, Any]:
    """The run's PROV document loads with the prov library; return its summary."""
    import prov

    documents = sorted(run_dir.glob("prov_*.json"))
    assert len(documents) == 1, documents
    document = prov.read(str(documents[0]), format="json")
    assert len(document.get_records()) > 0
    summary: dict[str, Any] = json.loads((run_dir / "summary.json").read_text())
    return summary


def ranks_finished(summary: dict[str, Any]) -> list[int]:
    return sorted(r["rank"] for r in summary["ranks"] if r["status"] == "finished")


def start_quiet_run(tmp_path: Path, experiment: str, **kwargs: Any) -> Any:
    """An in-process run for a compatibility test: no timer flush, no signal handlers, no sampler."""
    import yprov4ml_hpc as prov4ml

    return prov4ml.start_run(
        experiment,
        provenance_save_dir=str(tmp_path),
        flush_interval_s=0,
        install_signal_handlers=False,
        system_metrics_interval_s=0,
        **kwargs,
    )
