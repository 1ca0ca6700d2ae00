"""Where one ``log_metric`` call spends its time, and what cheaper designs would save.

Two conditions, measured in the same run and interleaved:

* warm: a tight loop of calls (everything in L1/L2 cache), (loop - empty loop) / calls;
* after a training step: 10 calls right after a NumPy MLP step (bench_overhead's model),
  which evicts the collector's objects from the caches, as in a real training loop.

Rows are (a) the primitive operations the hot path is made of, (b) the real API calls and
(c) stand-alone sketches of alternative ring designs (this file's own code, hot path only:
their drain/flush cost is not included, see bench_core's ``flush_us_per_point``).

usage: python benchmarks/bench_hotpath.py [--calls 200000] [--steps 300] [--out results/hotpath.json]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import machine_info, median, write_json
from bench_overhead import TinyMLP

_time_ns = time.time_ns


# --- stand-alone ring sketches (hot path only) -------------------------------------------------
class _Ring:
    __slots__ = ("capacity", "head", "next_step", "steps", "tail", "times", "values")

    def __init__(self, capacity: int, steps: Any, values: Any, times: Any) -> None:
        self.capacity, self.head, self.tail, self.next_step = capacity, 0, 0, 0
        self.steps, self.values, self.times = steps, values, times


class SketchCurrent:
    """Same shape as Run.log_metric: tuple-keyed dict, three memoryviews, time_ns."""

    def __init__(self, capacity: int = 4096) -> None:
        import numpy as np

        self.np, self.capacity, self.rings = np, capacity, {}

    def _new(self, key: str, context: object) -> _Ring:
        np, cap = self.np, self.capacity
        ring = _Ring(cap, np.zeros(cap, np.int64).data, np.zeros(cap).data, np.zeros(cap, np.int64).data)
        self.rings[(key, context)] = ring
        return ring

    def log_metric(self, key: str, value: float, context: object = None, step: int | None = None) -> None:
        ring = self.rings.get((key, context)) or self._new(key, context)
        head = ring.head
        if head - ring.tail >= ring.capacity:
            ring.tail = head  # a real ring flushes here
        i = head % ring.capacity
        ring.values[i] = value
        if step is None:
            step = ring.next_step
        ring.steps[i] = step
        ring.next_step = step + 1
        ring.times[i] = _time_ns()
        ring.head = head + 1


class SketchInterleaved(SketchCurrent):
    """One int64 record array (step, value bits, time) per ring: one cache line per point."""

    def _new(self, key: str, context: object) -> _Ring:
        np, cap = self.np, self.capacity
        records = np.zeros(3 * cap, np.int64)
        ring = _Ring(cap, records.data, records.view(np.float64).data, None)
        self.rings[(key, context)] = ring
        return ring

    def log_metric(self, key: str, value: float, context: object = None, step: int | None = None) -> None:
        ring = self.rings.get((key, context)) or self._new(key, context)
        head = ring.head
        if head - ring.tail >= ring.capacity:
            ring.tail = head
        i = 3 * (head % ring.capacity)
        ints = ring.steps
        ring.values[i + 1] = value
        if step is None:
            step = ring.next_step
        ints[i] = step
        ring.next_step = step + 1
        ints[i + 2] = _time_ns()
        ring.head = head + 1


class SketchLists(SketchCurrent):
    """Preallocated Python lists (converted to NumPy at flush); float checked by class."""

    def _new(self, key: str, context: object) -> _Ring:
        cap = self.capacity
        ring = _Ring(cap, [0] * cap, [0.0] * cap, [0] * cap)
        self.rings[(key, context)] = ring
        return ring

    def log_metric(self, key: str, value: float, context: object = None, step: int | None = None) -> None:
        ring = self.rings.get((key, context)) or self._new(key, context)
        head = ring.head
        if head - ring.tail >= ring.capacity:
            ring.tail = head
        i = head % ring.capacity
        ring.values[i] = value if value.__class__ is float else float(value)
        if step is None:
            step = ring.next_step
        ring.steps[i] = step
        ring.next_step = step + 1
        ring.times[i] = _time_ns()
        ring.head = head + 1


class SketchNoClock(SketchCurrent):
    """The current design without the per-point clock read (to price time_ns alone)."""

    def log_metric(self, key: str, value: float, context: object = None, step: int | None = None) -> None:
        ring = self.rings.get((key, context)) or self._new(key, context)
        head = ring.head
        if head - ring.tail >= ring.capacity:
            ring.tail = head
        i = head % ring.capacity
        ring.values[i] = value
        if step is None:
            step = ring.next_step
        ring.steps[i] = step
        ring.next_step = step + 1
        ring.head = head + 1


def make_log_metrics_one_clock(run: Any) -> Callable[..., None]:
    """Sketch of a ``Run.log_metrics`` fast path: one clock read and one frame per step.

    Uses the run's private rings (``_buffers``, ``_new_series``, ``_flush_series``); it is a
    measurement of a proposed change, not an API.
    """
    buffers, new_series, flush_series = run._buffers, run._new_series, run._flush_series

    def log_metrics(metrics: dict[str, float], context: object = None, step: int | None = None) -> None:
        now = _time_ns()
        for key, value in metrics.items():
            buf = buffers.get((key, context)) or new_series(key, context)
            head = buf.head
            if head - buf.tail >= buf.capacity:
                flush_series(buf)
            i = head % buf.capacity
            buf.value_view[i] = value
            point_step = buf.next_step if step is None else step
            buf.step_view[i] = point_step
            buf.next_step = point_step + 1
            buf.time_view[i] = now
            buf.head = head + 1

    return log_metrics


# --- measurement --------------------------------------------------------------------------------
def _noop(key: str, value: float, context: object = None, step: int | None = None) -> None:
    return None


def _warm_ns(fn: Callable[..., Any], ctx: object, calls: int) -> float:
    """ns per call of ``fn(key, value, context=ctx, step=i)`` in a tight loop, minus the loop."""
    pc = time.perf_counter_ns
    t0 = pc()
    for i in range(calls):
        fn("loss", 0.5, context=ctx, step=i)
    t1 = pc()
    for _i in range(calls):
        pass
    t2 = pc()
    return ((t1 - t0) - (t2 - t1)) / calls


def _cold_ns(fn: Callable[..., Any], ctx: object, model: TinyMLP, step: int) -> float:
    """ns per call for the 10 calls that follow one training step."""
    metrics = model.step()
    pc = time.perf_counter_ns
    t0 = pc()
    for key, value in metrics.items():
        fn(key, value, context=ctx, step=step)
    return (pc() - t0) / len(metrics)


def _per_step_rows(run: Any, prov: Any, steps: int) -> list[dict[str, Any]]:
    """Logging 10 metrics right after a training step, per step, several ways (interleaved)."""
    ctx = prov.Context.TRAINING
    api, method = prov.log_metric, run.log_metric

    def ten_api(step: int, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            api(key, value, context=ctx, step=step)

    def ten_method(step: int, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            method(key, value, ctx, step)

    def batch(step: int, metrics: dict[str, float]) -> None:
        prov.log_metrics(metrics, context=ctx, step=step)

    ways: dict[str, Callable[[int, dict[str, float]], None]] = {
        "per step: nothing (timer and call floor)": lambda step, metrics: None,
        "per step: 10 x yprov4ml_hpc.log_metric": ten_api,
        "per step: 10 x Run.log_metric": ten_method,
        "per step: yprov4ml_hpc.log_metrics (current)": batch,
    }
    try:
        one_clock = make_log_metrics_one_clock(run)
        ways["per step: sketch log_metrics, one clock read"] = lambda step, m: one_clock(m, ctx, step)
    except AttributeError:  # the run's private layout changed: the sketch no longer applies
        pass
    model = TinyMLP()
    pc = time.perf_counter_ns
    costs: dict[str, list[int]] = {name: [] for name in ways}
    names = list(ways)
    for step in range(steps):
        for name in names[step % len(names) :] + names[: step % len(names)]:
            metrics = model.step()
            t0 = pc()
            ways[name](100_000 + step, metrics)
            costs[name].append(pc() - t0)
    return [
        {"name": name, "warm_ns": None, "cold_ns": median(costs[name][5:] or costs[name])}
        for name in names
    ]


def _primitive_rows(calls: int, reps: int) -> list[dict[str, Any]]:
    """Warm cost of each operation the hot path performs (timeit, empty statement subtracted)."""
    import timeit

    import numpy as np

    import yprov4ml_hpc as prov

    arr = np.zeros(4096)
    env = {
        "d": {("loss", "training"): 1, ("loss", prov.Context.TRAINING): 1},
        "ctx": "training",
        "ectx": prov.Context.TRAINING,
        "mv": arr.data,
        "imv": np.zeros(4096, np.int64).data,
        "arr": arr,
        "lst": [0.0] * 4096,
        "tn": time.time_ns,
        "noop": _noop,
        "i": 17,
        "v": 0.5,
    }
    stmts = {
        "function call, 2 positional + 2 keyword args (no-op)": "noop('loss', v, context=ctx, step=i)",
        "tuple key + dict.get (str context)": "d.get(('loss', ctx))",
        "tuple key + dict.get (Context enum)": "d.get(('loss', ectx))",
        "memoryview[i] = float": "mv[i] = v",
        "ndarray[i] = float": "arr[i] = v",
        "memoryview[i] = int": "imv[i] = i",
        "list[i] = float": "lst[i] = v",
        "time.time_ns()": "tn()",
    }
    empty = min(timeit.repeat("pass", number=calls, repeat=reps)) / calls
    rows = []
    for name, stmt in stmts.items():
        best = min(timeit.repeat(stmt, globals=env, number=calls, repeat=reps)) / calls
        rows.append({"name": f"primitive: {name}", "warm_ns": (best - empty) * 1e9, "cold_ns": None})
    return rows


def bench(calls: int, steps: int, reps: int, workdir: Path) -> dict[str, Any]:
    import yprov4ml_hpc as prov

    run = prov.start_run("bench_hotpath", provenance_save_dir=str(workdir))
    ctx = prov.Context.TRAINING
    variants: dict[str, Callable[..., Any]] = {
        "floor: no-op function, same arguments": _noop,
        "yprov4ml_hpc.log_metric (module API)": prov.log_metric,
        "Run.log_metric (bound method)": run.log_metric,
        "sketch: current design re-implemented": SketchCurrent().log_metric,
        "sketch: interleaved record array": SketchInterleaved().log_metric,
        "sketch: preallocated Python lists": SketchLists().log_metric,
        "sketch: current design without time_ns": SketchNoClock().log_metric,
    }
    for fn in variants.values():  # create the series, warm the code
        for i in range(2000):
            fn("loss", 0.5, context=ctx, step=i)
    warm: dict[str, list[float]] = {name: [] for name in variants}
    cold: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for rep in range(reps):
        for name in names[rep % len(names) :] + names[: rep % len(names)]:
            warm[name].append(_warm_ns(variants[name], ctx, calls))
    model = TinyMLP()
    for step in range(steps):
        for name in names[step % len(names) :] + names[: step % len(names)]:
            cold[name].append(_cold_ns(variants[name], ctx, model, step))
    step_rows = _per_step_rows(run, prov, steps)
    prov.end_run()
    rows = _primitive_rows(calls, max(3, reps))
    for name in names:
        after_step = median(cold[name][5:] or cold[name])  # the first steps warm the code up
        rows.append({"name": name, "warm_ns": median(warm[name]), "cold_ns": after_step})
    rows += step_rows
    return {
        "rows": rows,
        "note": (
            "warm: tight loop, loop cost subtracted, median of reps; after a training step: mean of the "
            "10 calls that follow one NumPy MLP step, median over steps (variants interleaved); 'per "
            "step' rows: ns for all 10 metrics of a step. Stand-alone sketches omit flushing and "
            "validation of new series; they price the per-point design only."
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000, help="calls per warm measurement")
    parser.add_argument("--steps", type=int, default=300, help="training steps for the cold measurement")
    parser.add_argument("--reps", type=int, default=5, help="warm repetitions per variant")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_hotpath_") as tmp:
        res = {"benchmark": "hotpath", "machine": machine_info(), "argv": sys.argv}
        res.update(bench(args.calls, args.steps, args.reps, Path(tmp)))
    res["seconds"] = time.perf_counter() - started
    write_json(args.out, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
