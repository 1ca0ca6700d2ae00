"""Realistic run directories and a CLI runner for the CLI, plot and report tests.

Each rank is a real process that calls start_run(rank=r, run_id=...) with WORLD_SIZE set,
logs a training job's worth of series with synthetic timestamps (a 60 s job recorded in a
fraction of a second) and calls end_run.  Node names are faked (4 ranks per node) so that
multi-node layouts are exercised on one machine.

    from _runfactory import make_run, shared_run, cli
    run_dir = make_run(tmp_path, ranks=8, slow_rank=5)
    eight = shared_run("eight")          # built once per test process; do not write into it
    proc = cli("summary", str(eight))    # python -m yprov4ml_hpc summary ...
"""

from __future__ import annotations

import argparse
import atexit
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
REPO = HERE.parents[1]
RANKS_PER_NODE = 4
DT_S = 0.5  # seconds per training step in the synthetic timeline
_LAUNCHER_VARS = (
    "RANK",
    "LOCAL_RANK",
    "OMPI_COMM_WORLD_RANK",
    "PMI_RANK",
    "PMIX_RANK",
    "SLURM_PROCID",
    "SLURM_NTASKS",
    "SLURM_JOB_ID",
    "SLURM_STEP_ID",
    "TORCHELASTIC_RUN_ID",
)


def make_run(
    save_dir: Path,
    ranks: int = 1,
    *,
    experiment: str = "demo",
    run_id: str = "fixture",
    steps: int = 120,
    slow_rank: int | None = None,
    killed_rank: int | None = None,
    hardware: bool = True,
    keep_summary: bool = True,
    fake_hosts: bool = True,
    params: dict[str, Any] | None = None,
) -> Path:
    """Run ``ranks`` processes in parallel; return the run directory.

    ``killed_rank`` dies with os._exit before end_run (its file stays 'running');
    ``keep_summary=False`` removes what the finalize wrote, as for a job killed before it.
    """
    env = {**os.environ, "WORLD_SIZE": str(ranks), "PYTHONPATH": str(REPO), "YPROV4ML_HPC_CARBON": "0"}
    for name in _LAUNCHER_VARS:
        env.pop(name, None)
    spec = {
        "save_dir": str(save_dir),
        "experiment": experiment,
        "run_id": run_id,
        "steps": steps,
        "slow_rank": slow_rank,
        "killed_rank": killed_rank,
        "hardware": hardware,
        "base_ns": time.time_ns(),
        "world": ranks,
        "fake_hosts": fake_hosts,
        "params": params or {},
    }
    procs = [
        subprocess.Popen(
            [sys.executable, str(HERE), json.dumps({**spec, "rank": r})],
            env={**env, "LOCAL_RANK": str(r % RANKS_PER_NODE), "LOCAL_WORLD_SIZE": str(RANKS_PER_NODE)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in range(ranks)
    ]
    for rank, proc in enumerate(procs):
        out, err = proc.communicate(timeout=300)
        if proc.returncode != 0 and rank != killed_rank:
            raise RuntimeError(f"fixture rank {rank} failed ({proc.returncode}):\n{out}\n{err}")
    run_dir = save_dir / f"{experiment}_{run_id}"
    if not keep_summary:
        for path in run_dir.iterdir():
            if path.is_file():
                path.unlink()
    return run_dir


_SHARED = {
    "eight": {"ranks": 8, "slow_rank": 5},
    "one": {"ranks": 1},
    # A job killed before its finalize: rank 2 died silently, nothing merged.
    "crash": {"ranks": 3, "killed_rank": 2, "keep_summary": False, "hardware": False, "fake_hosts": False},
}
_built: dict[str, Path] = {}
_root: list[Path] = []


def shared_run(name: str) -> Path:
    """A run built once per test process (tests must not write into it: use -o or a copy)."""
    if name not in _built:
        if not _root:
            _root.append(Path(tempfile.mkdtemp(prefix="yprov4ml-hpc-fixtures-")))
            atexit.register(shutil.rmtree, _root[0], True)
        save_dir = _root[0] / name
        save_dir.mkdir()
        _built[name] = make_run(save_dir, run_id=name, **_SHARED[name])
    return _built[name]


def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    """``python -m yprov4ml_hpc ARGS`` in a subprocess, as a user would run it."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "YPROV4ML_HPC_PROGRESS": "0", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "yprov4ml_hpc", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        check=False,
    )


def assert_user_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    """Exit 2, exactly one line on stderr naming the problem, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def _rank_main(spec: dict[str, Any]) -> None:
    rank = spec["rank"]
    if spec["fake_hosts"]:
        node = f"node{rank // RANKS_PER_NODE:02d}"
        socket.gethostname = lambda: node  # fake a multi-node layout on one machine
    import warnings

    import numpy as np

    import yprov4ml_hpc as prov4ml

    warnings.simplefilter("ignore")  # "NVML not usable here": expected on a CPU machine
    rng = np.random.default_rng(rank)
    prov4ml.start_run(
        spec["experiment"],
        provenance_save_dir=spec["save_dir"],
        rank=rank,
        run_id=spec["run_id"],
        flush_interval_s=0,
        system_metrics_interval_s=0,  # real samplers only at start and end: fast and quiet
        disable_codecarbon=True,
        finalize_timeout_s=3,  # a killed rank must not hold the others for long
    )
    prov4ml.log_params(
        {
            "lr": 0.01,
            "batch_size": 64,
            "optimizer": "adamw",
            "seed": 1234 + rank,
            "world_size": spec["world"],
            **spec["params"],
        }
    )
    base = spec["base_ns"]
    dt = DT_S * (1.8 if rank == spec["slow_rank"] else 1.0)
    steps = spec["steps"]
    train, val = prov4ml.Context.TRAINING, prov4ml.Context.VALIDATION
    for step in range(steps):
        t = base + int(step * dt * 1e9)
        loss = 2.0 * math.exp(-step / 25) + 0.1 + 0.04 * rng.standard_normal() + 0.02 * rank
        prov4ml.log_metric("loss", loss, context=train, step=step, timestamp=t)
        prov4ml.log_metric("accuracy", 1 - loss / 2.5, context=train, step=step, timestamp=t)
        if step % 10 == 9:
            prov4ml.log_metric("val_loss", loss * 1.1, context=val, step=step, timestamp=t)
    if spec["hardware"]:
        _hardware(prov4ml, rng, rank, base, int(steps * dt) + 5)
    if rank == spec["killed_rank"]:
        prov4ml.active_run().flush()  # type: ignore[union-attr]
        os._exit(9)  # dies without a word: the file stays 'running'
    if rank == spec["slow_rank"]:
        time.sleep(0.4)  # a longer wall time as well
    prov4ml.end_run()


def _hardware(prov4ml: Any, rng: Any, rank: int, base: int, seconds: int) -> None:
    """GPU and energy series as the samplers write them (1 Hz, cumulative energy)."""
    log = prov4ml.log_metric
    gpu = f"gpu{rank % RANKS_PER_NODE}"
    energy = emissions = 0.0
    for second in range(seconds):
        t = base + second * 1_000_000_000
        busy = 3 <= second < seconds - 3
        util = min(max((92.0 if busy else 2.0) + 3.0 * rng.standard_normal(), 0.0), 100.0)
        power = 80.0 + (5.6 * util if busy else 0.0)
        energy += power
        log(f"{gpu}/utilization_pct", util, context="gpu", timestamp=t)
        log(f"{gpu}/power_w", power, context="gpu", timestamp=t)
        log(f"{gpu}/energy_j", energy, context="energy", timestamp=t)
        if rank % RANKS_PER_NODE == 0:  # one codecarbon tracker per node
            emissions += (power * 4 + 150.0) / 3.6e6 * 0.35  # kWh x kg/kWh
            log("codecarbon/energy_j", energy * 4 + 150.0 * second, context="energy", timestamp=t)
            log("codecarbon/emissions_kg", emissions, context="energy", timestamp=t)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="one rank of a fixture run (see make_run)")
    parser.add_argument("spec")
    _rank_main(json.loads(parser.parse_args().spec))
