"""summary.json: every number checked against numbers computed from the logged values."""

from __future__ import annotations

import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest
from _merge_kit import edit_rank_file, make_run, merge, summary_of

DESIGN_KEYS = {
    "schema",
    "schema_version",
    "run_id",
    "experiment",
    "world_size",
    "generated_by",
    "generated_at",
    "ranks",
    "metrics",
    "stragglers",
    "energy",
    "collector",
}
RANK_KEYS = {"rank", "host", "local_rank", "status", "wall_time_s", "steps", "bytes", "energy_j"}
METRIC_KEYS = {
    "name",
    "context",
    "count",
    "min",
    "max",
    "mean",
    "last",
    "min_rank",
    "min_host",
    "max_rank",
    "max_host",
}


def _strict_json(path: Path) -> dict:
    def reject(token: str) -> None:
        raise AssertionError(f"non-JSON constant {token} in {path}")

    return json.loads(path.read_text(), parse_constant=reject)


def _set_host(run_dir: Path, rank: int, host: str) -> None:
    with edit_rank_file(run_dir / "ranks" / f"rank_{rank:06d}.h5") as handle:
        handle.attrs["host"] = host


def test_metric_statistics_equal_the_logged_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made = make_run(tmp_path, monkeypatch, world_size=4)
    _set_host(made.run_dir, 3, "other-node")
    merge(made.run_dir)
    summary = _strict_json(made.run_dir / "summary.json")
    assert summary.keys() >= DESIGN_KEYS
    assert summary["schema"] == "yprov4ml_hpc/summary" and summary["schema_version"] == 1
    assert summary["generated_by"] == "merge" and summary["world_size"] == 4
    hosts = {r["rank"]: r["host"] for r in summary["ranks"]}
    by_key = {(m["name"], m["context"]): m for m in summary["metrics"]}
    assert set(by_key) == {("loss", "training"), ("acc", "validation")}
    for (name, context), metric in by_key.items():
        assert metric.keys() >= METRIC_KEYS
        per_rank = {rank: np.array(v) for (n, c, rank), v in made.logged.items() if (n, c) == (name, context)}
        everything = np.concatenate(list(per_rank.values()))
        assert metric["count"] == everything.size
        assert metric["min"] == everything.min() and metric["max"] == everything.max()
        assert metric["mean"] == pytest.approx(everything.mean(), rel=1e-12)
        assert metric["last"] == pytest.approx(np.mean([v[-1] for v in per_rank.values()]), rel=1e-12)
        min_rank = min(per_rank, key=lambda r: (per_rank[r].min(), r))
        max_rank = max(per_rank, key=lambda r: (per_rank[r].max(), -r))
        assert (metric["min_rank"], metric["min_host"]) == (min_rank, hosts[min_rank])
        assert (metric["max_rank"], metric["max_host"]) == (max_rank, hosts[max_rank])
    assert by_key[("loss", "training")]["max_host"] == "other-node"  # rank 3 logs the largest loss


def test_rank_entries_and_collector_totals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made = make_run(
        tmp_path,
        monkeypatch,
        world_size=5,
        steps=20,
        statuses={1: "failed", 2: "killed", 3: "running"},
        skip_ranks=(4,),
    )
    merge(made.run_dir)
    summary = summary_of(made.run_dir)
    ranks = {r["rank"]: r for r in summary["ranks"]}
    assert all(r.keys() >= RANK_KEYS for r in ranks.values())
    assert [ranks[r]["status"] for r in range(5)] == ["finished", "failed", "killed", "incomplete", "missing"]
    for rank in range(4):
        path = made.run_dir / "ranks" / f"rank_{rank:06d}.h5"
        assert ranks[rank]["steps"] == 20
        assert ranks[rank]["bytes"] == path.stat().st_size
        assert ranks[rank]["wall_time_s"] is not None and ranks[rank]["wall_time_s"] >= 0
    assert ranks[4]["host"] is None and ranks[4]["steps"] is None
    attrs = []
    for rank in range(4):
        with h5py.File(made.run_dir / "ranks" / f"rank_{rank:06d}.h5", "r") as handle:
            attrs.append(dict(handle.attrs))
    collector = summary["collector"]
    assert collector["log_calls"] == sum(int(a["log_calls"]) for a in attrs)
    assert collector["flushes"] == sum(int(a["flushes"]) for a in attrs)
    assert collector["bytes_written"] == sum(int(a["bytes_written"]) for a in attrs)
    assert collector["flush_time_s"] == pytest.approx(sum(float(a["flush_time_s"]) for a in attrs))
    assert collector["finalize_time_s"] > 0


def test_nan_and_inf_never_break_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def loss(rank: int, step: int) -> float:
        if rank == 0 and step == 29:
            return math.nan  # rank 0's last value is NaN: "last" averages the other ranks
        if rank == 1 and step == 3:
            return math.nan
        return float(step + rank)

    made = make_run(
        tmp_path,
        monkeypatch,
        world_size=3,
        loss=loss,
        extra=lambda run: run.log_metric("grad", math.inf, context="training"),
    )
    merge(made.run_dir)
    summary = _strict_json(made.run_dir / "summary.json")
    metric = next(m for m in summary["metrics"] if m["name"] == "loss")
    finite = [
        v
        for vals in (made.logged[("loss", "training", r)] for r in range(3))
        for v in vals
        if not math.isnan(v)
    ]
    assert metric["count"] == 90 and metric["nan_count"] == 2
    assert metric["mean"] == pytest.approx(np.mean(finite))
    assert metric["last"] == pytest.approx(np.mean([29 + 1, 29 + 2]))
    grad = next(m for m in summary["metrics"] if m["name"] == "grad")
    assert grad["max"] is None and grad["mean"] is None  # +inf is written as null
    assert grad["max_rank"] == 0


def test_stragglers_by_step_interval_with_a_configurable_factor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = make_run(tmp_path, monkeypatch, world_size=4, step_sleep={2: 3})  # rank 2: 4 ms/step, others 1
    merge(made.run_dir)
    stragglers = summary_of(made.run_dir)["stragglers"]
    assert [s["rank"] for s in stragglers] == [2]
    assert "4.00x the median" in stragglers[0]["reason"] and stragglers[0]["host"]
    merge(made.run_dir, straggler_factor=5.0)
    assert summary_of(made.run_dir)["stragglers"] == []


def test_energy_codecarbon_per_node_else_gpu_and_rapl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    energy = {
        # node "a": codecarbon (whole machine) on the leader wins over the GPU counters
        0: {
            "codecarbon/energy_j": [5.0, 50.0],
            "codecarbon/emissions_kg": [0.001, 0.002],
            "gpu0/energy_j": [1.0, 7.0],
        },
        1: {"gpu1/energy_j": [2.0, 9.0, math.nan]},  # last *finite* value counts
        # node "b": no codecarbon: GPU + RAPL counters
        2: {"gpu0/energy_j": [4.0, 11.0], "rapl/package0_energy_j": [3.0, 13.0]},
        3: {"gpu1/energy_j": [6.0, 17.0]},
    }
    made = make_run(tmp_path, monkeypatch, world_size=4, energy=energy)
    for rank, host in ((0, "a"), (1, "a"), (2, "b"), (3, "b")):
        _set_host(made.run_dir, rank, host)
    with edit_rank_file(made.run_dir / "ranks" / "rank_000000.h5") as handle:
        handle.attrs["energy_methods"] = json.dumps({"gpu0/energy_j": "nvml_energy_counter"})
    merge(made.run_dir)
    summary = _strict_json(made.run_dir / "summary.json")
    assert summary["energy"]["per_node_j"] == {"a": 50.0, "b": 11.0 + 13.0 + 17.0}
    assert summary["energy"]["total_j"] == 50.0 + 41.0
    assert summary["energy"]["emissions_kg"] == pytest.approx(0.002)
    methods = summary["energy"]["methods"]
    assert methods["gpu0/energy_j"] == "nvml, nvml_energy_counter"  # declared on rank 0, default on rank 2
    assert methods["codecarbon/energy_j"] == "codecarbon" and "total_j" in methods
    assert [r["energy_j"] for r in summary["ranks"]] == [50.0, 9.0, 24.0, 17.0]


def test_no_energy_series_means_null_not_zero(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made = make_run(tmp_path, monkeypatch, world_size=2)
    merge(made.run_dir)
    energy = summary_of(made.run_dir)["energy"]
    assert energy == {"total_j": None, "per_node_j": {}, "emissions_kg": None, "methods": {}}


def test_a_gpu_seen_by_two_ranks_is_counted_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Slurm --gres=gpu:1 with two tasks: both ranks see CUDA_VISIBLE_DEVICES=0 and measure it.
    energy = {0: {"gpu0/energy_j": [0.0, 30.0]}, 1: {"gpu0/energy_j": [0.0, 31.0]}}
    made = make_run(tmp_path, monkeypatch, world_size=2, energy=energy)
    for rank in (0, 1):
        _set_host(made.run_dir, rank, "n1")
        with edit_rank_file(made.run_dir / "ranks" / f"rank_{rank:06d}.h5") as handle:
            handle.attrs["sampler_info"] = json.dumps({"gpu_uuids": {"0": "GPU-aaaa"}})
    merge(made.run_dir)
    summary = summary_of(made.run_dir)
    assert summary["energy"]["per_node_j"] == {"n1": 31.0}  # not 61
    assert [r["energy_j"] for r in summary["ranks"]] == [30.0, 31.0]  # what each rank measured
