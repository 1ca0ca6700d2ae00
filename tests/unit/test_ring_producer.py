"""The ring producer exists twice: inlined in ``log_metric`` (the hot path) and once in
``Run._append_point`` for the cold paths (``log_metrics``, the samplers' ``record_sample``).
The same inputs must give the same points, the same auto-increment and the same errors."""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from yprov4ml_hpc import Run

TIME_NS = 1_700_000_000_000_000_000
STEPS: list[Any] = [None, 0, 7, -3, np.int64(12), 5.0, 2**63 - 1, 2**63, 1.5, "3", True]
VALUES: list[Any] = [1.25, 3, np.float32(0.5), np.int64(-4), math.inf, math.nan, 10**400, Fraction(1, 4), "x"]


def _outcome(log: Callable[[Any, Any], None], run: Run, name: str, value: Any, step: Any) -> Any:
    try:
        log(value, step)
        log(2.0, None)  # the auto-increment after the first point
    except Exception as exc:  # the error is part of the behaviour compared
        return type(exc)
    buf = run._series[(name, "training")]
    steps, values, _ = buf.drain()
    return steps.tolist(), [repr(v) for v in values.tolist()], buf.next_step


@pytest.fixture
def run(tmp_path: Path) -> Any:
    run = Run(
        "ring",
        provenance_save_dir=tmp_path,
        flush_interval_s=0,
        install_signal_handlers=False,
        system_metrics_interval_s=0,
        carbon=False,
    )
    yield run
    run.end(finalize=False)


@pytest.mark.parametrize("step", STEPS, ids=repr)
@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_three_producers_agree(run: Run, value: Any, step: Any) -> None:
    case = f"{value!r}/{step!r}"

    def hot(v: Any, s: Any) -> None:
        run.log_metric(f"hot {case}", v, "training", s, timestamp=TIME_NS)

    def many(v: Any, s: Any) -> None:
        run.log_metrics({f"many {case}": v}, "training", s)

    def sampler(v: Any, s: Any) -> None:
        run.record_sample(f"sample {case}", v, "training", s, TIME_NS)

    outcomes = {
        "log_metric": _outcome(hot, run, f"hot {case}", value, step),
        "log_metrics": _outcome(many, run, f"many {case}", value, step),
        "record_sample": _outcome(sampler, run, f"sample {case}", value, step),
    }
    assert outcomes["log_metric"] == outcomes["log_metrics"] == outcomes["record_sample"], outcomes


def test_the_comparison_sees_a_difference(run: Run) -> None:
    """A step the hot path refuses (a str) is an error, not a point: the outcome tells them apart."""
    good = _outcome(lambda v, s: run.log_metric("a", v, "training", s), run, "a", 1.0, 3)
    bad = _outcome(lambda v, s: run.log_metric("b", v, "training", s), run, "b", 1.0, "3")
    assert good == ([3, 4], ["1.0", "2.0"], 5)
    assert isinstance(bad, type) and issubclass(bad, TypeError)


def test_a_full_ring_flushes_on_every_path(run: Run, tmp_path: Path) -> None:
    small = Run(
        "small",
        provenance_save_dir=tmp_path / "small",
        buffer_size=4,
        flush_interval_s=0,
        install_signal_handlers=False,
        system_metrics_interval_s=0,
        carbon=False,
    )
    for i in range(10):
        small.log_metric("hot", float(i), "training")
        small.log_metrics({"many": float(i)}, "training")
        small.record_sample("sample", float(i), "training", None, TIME_NS + i)
    run_dir = small.end(finalize=False)
    import yprov4ml_hpc

    data = yprov4ml_hpc.load_run(run_dir)
    for name in ("hot", "many", "sample"):
        series = data.series(name, "training", 0)
        assert series.value.tolist() == [float(i) for i in range(10)], name
        assert series.step.tolist() == list(range(10)), name
