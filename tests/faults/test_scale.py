"""Size limits: many series, long series, big params (the full sizes are marked ``slow``).

- 10^4 distinct metric names in one run (CI: 10^3)
- 10^6 steps of one metric (CI: 10^5)
- a param value of 10 MB (CI as well: it is cheap)

What may be lost: nothing.  Every point and the param read back exactly, through load_run and
through a merge (whose summary counts every point); ring memory stays within the documented
budget however many series there are.  Times are never asserted (see benchmarks/).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from faults_harness import merge

import yprov4ml_hpc as prov4ml

QUIET = {"flush_interval_s": 0, "system_metrics_interval_s": 0, "install_signal_handlers": False}


def _many_names(tmp_path: Path, count: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = prov4ml.start_run("many", provenance_save_dir=tmp_path, max_buffer_mb=16, **QUIET)
        for step in range(3):
            for i in range(count):
                prov4ml.log_metric(f"layer{i}/grad_norm", i + step * 0.25, context="training", step=step)
        # However many series, rings stay within max_buffer_mb (past it, new series get 64 points).
        assert run._ring_bytes <= 16 * 2**20 + count * 64 * 24
        run_dir = prov4ml.end_run()
    data = prov4ml.load_run(run_dir)
    keys = {(m, c) for m, c, _ in data.series_keys() if c == "training"}
    assert len(keys) == count
    for i in range(0, count, max(1, count // 200)):
        series = data.series(f"layer{i}/grad_norm", "training", 0)
        assert series.step.tolist() == [0, 1, 2]
        assert series.value.tolist() == [i, i + 0.25, i + 0.5]
    summary = json.loads((run_dir / "summary.json").read_text())
    counts = [m["count"] for m in summary["metrics"] if m["context"] == "training"]
    assert len(counts) == count and set(counts) == {3}


def test_many_metric_names_ci(tmp_path: Path) -> None:
    """10^3 distinct metric names, 3 points each: all read back; finalize's summary counts them."""
    _many_names(tmp_path, 1000)


@pytest.mark.slow
def test_many_metric_names_full(tmp_path: Path) -> None:
    """10^4 distinct metric names (takes minutes here: see the report on per-series cost)."""
    _many_names(tmp_path, 10_000)


def _long_series(tmp_path: Path, steps: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prov4ml.start_run("long", provenance_save_dir=tmp_path, **QUIET)
        log_metric = prov4ml.log_metric
        for step in range(steps):
            log_metric("loss", step * 0.5, context="training")
        run_dir = prov4ml.end_run()
    data = prov4ml.load_run(run_dir)
    series = data.series("loss", "training", 0)
    np.testing.assert_array_equal(series.step, np.arange(steps))
    np.testing.assert_array_equal(series.value, np.arange(steps) * 0.5)
    assert np.all(np.diff(series.time_ns) >= 0)
    # 24 bytes a point (int64 step, float64 value, int64 time): the file adds little to that.
    assert data.ranks[0].path is not None
    assert data.ranks[0].path.stat().st_size < 24 * steps * 1.2 + 2**20
    (run_dir / "summary.json").unlink()
    summary = merge(run_dir)
    (loss,) = [m for m in summary["metrics"] if m["name"] == "loss"]
    assert loss["count"] == steps and loss["min"] == 0.0 and loss["max"] == (steps - 1) * 0.5


def test_long_series_ci(tmp_path: Path) -> None:
    """10^5 steps of one metric: exact read-back, ~24 bytes a point, merged count exact."""
    _long_series(tmp_path, 100_000)


@pytest.mark.slow
def test_long_series_full(tmp_path: Path) -> None:
    """10^6 steps of one metric."""
    _long_series(tmp_path, 1_000_000)


def _big_param(tmp_path: Path, value: object) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prov4ml.start_run("big", provenance_save_dir=tmp_path, **QUIET)
        prov4ml.log_param("big", value)
        prov4ml.log_param("after", 1)
        run_dir = prov4ml.end_run()
    params = prov4ml.load_run(run_dir).params(0)
    assert params["big"] == value
    assert params["after"] == 1
    (run_dir / "summary.json").unlink()
    merge(run_dir)


def test_ten_megabyte_param(tmp_path: Path) -> None:
    """A 10 MB param (Unicode text) reads back exactly, and the run merges."""
    text = ("αβγδ🔥" * 2_000_000)[: 5 * 2**20] + "x" * (5 * 2**20)
    assert len(text.encode()) > 10 * 10**6
    _big_param(tmp_path, text)


@pytest.mark.slow
def test_ten_megabyte_nested_param(tmp_path: Path) -> None:
    """A 10 MB nested param (400 000 rows of a table) reads back exactly, and the run merges."""
    nested = {"rows": [[i, i * 0.5, str(i)] for i in range(400_000)]}
    assert len(json.dumps(nested)) > 10 * 10**6
    _big_param(tmp_path, nested)
