"""Node-aware energy under mpiexec on one node: every device measured once, codecarbon once."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

import yprov4ml_hpc as prov4ml

TRACE = Path(__file__).resolve().parents[1] / "fixtures" / "nvml" / "h100_trace.json"


def _codecarbon_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("codecarbon") is not None


def test_each_gpu_and_the_node_are_counted_once(comm: Any, shared_tmp: Path) -> None:
    os.environ["YPROV4ML_HPC_NVML_REPLAY"] = str(TRACE)
    carbon = _codecarbon_installed()
    os.environ["YPROV4ML_HPC_CARBON"] = "1" if carbon else "0"
    try:
        prov4ml.start_run("energy", provenance_save_dir=shared_tmp, system_metrics_interval_s=0.5)
        prov4ml.log_metric("loss", 1.0)
        time.sleep(4.0 if carbon else 1.0)  # codecarbon's tracker needs 1-3 s to start
        run_dir = prov4ml.end_run()
    finally:
        os.environ["YPROV4ML_HPC_CARBON"] = "0"
        del os.environ["YPROV4ML_HPC_NVML_REPLAY"]
    comm.Barrier()

    data = prov4ml.load_run(run_dir)
    hosts = {r.host for r in data.ranks}
    gpu_owners = [r.rank for r in data.ranks if ("gpu0/energy_j", "energy", r.rank) in data.series_keys()]
    node_series = [r.rank for r in data.ranks if ("node/cpu_pct", "system", r.rank) in data.series_keys()]
    carbon_ranks = [
        r.rank for r in data.ranks if ("codecarbon/energy_j", "energy", r.rank) in data.series_keys()
    ]
    leaders = [r.rank for r in data.ranks if r.local_rank == 0]
    # The replayed trace is one GPU: exactly one rank per node measures it (the local rank 0).
    assert gpu_owners == leaders, (gpu_owners, leaders)
    assert node_series == leaders
    if carbon:
        assert carbon_ranks == leaders
    else:
        assert carbon_ranks == []

    summary = json.loads((run_dir / "summary.json").read_text())
    energy = summary["energy"]
    assert sorted(energy["per_node_j"]) == sorted(hosts)
    assert energy["total_j"] == pytest.approx(sum(energy["per_node_j"].values()))
    per_rank = {r["rank"]: r["energy_j"] for r in summary["ranks"]}
    non_leaders = [r for r in per_rank if r not in leaders]
    assert all(per_rank[r] in (None, 0, 0.0) for r in non_leaders), per_rank
    assert energy["total_j"] == pytest.approx(sum(per_rank[r] or 0.0 for r in leaders))
