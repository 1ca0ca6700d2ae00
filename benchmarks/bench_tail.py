"""The tail of ``log_metric``: does the training thread ever wait for the disk?

Every call is timed on its own (``perf_counter_ns`` before and after, stored in a preallocated
array): 10 series filling together (one call per series per step, as a training loop logs its
metrics), ``--calls`` calls in all.  Reported: p50, p99, p99.9, p99.99, max, mean (ns) and the
number of calls over 200 us, with the timer's own cost measured the same way (``floor``) and
the same loop calling a Python function that does nothing (``noop``): what the machine itself
(scheduler, other jobs, page faults) does to a Python loop, whatever the call does.  On a
shared 2-core machine the noop loop's maximum is milliseconds; a writer that never makes the
training thread wait shows no more slow calls than that.

Before and after in one run: ``--baseline REF`` (a git commit, default the last commit before
the journal) is exported with ``git archive`` into a temporary folder and measured in a child
process with that package on ``PYTHONPATH``; the working tree is measured the same way.  The
two alternate ``--rounds`` times and each figure is the median over rounds.

Also reported: how many hand-offs found the writer a whole ring behind (``ring_waits``: the
training thread then waits for it; a writer starved of the GIL shows here), and for the
current tree bytes on disk per point (journal before the fold, .h5 after) and the writer's
throughput (points per second of writer time).

Where the calls over 200 us fall (``slow_at``): at the first hand-off of a step where every
series hands a half over (it seals that ring and wakes the writer), at the other nine hand-offs
of that step (seal only), or elsewhere (the writer's turns with the GIL, the machine).

``--release-gil``: the loop releases the GIL once a step (``time.sleep(0)``), as a real training
step does (kernel launches, data-loader waits); both loops, log_metric's and the no-op's.

``--writer``: who writes the working tree's journal (``start_run(writer=...)``, env
``YPROV4ML_HPC_WRITER``; default ``process``, the package's default on Linux);
``--before-writer`` the baseline's (default ``thread``; a baseline from before the option, which
had only the thread, ignores it).  ``--baseline HEAD --writer thread --writer process`` is not a
thing: to compare the two writers of one tree use ``--baseline HEAD --before-writer thread``.

usage: python benchmarks/bench_tail.py [--calls 10000000] [--rounds 1] [--baseline 6555d37]
                                       [--release-gil] [--writer thread|process]
                                       [--before-writer thread|process] [--out results/tail.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import machine_info, median, write_json

ROOT = Path(__file__).resolve().parent.parent
SERIES = 10
HALF = 2048  # the default ring's half (buffer_size 4096): every series hands off at these steps
DEFAULT_BASELINE = "6555d37"  # the last commit that wrote HDF5 from the training thread


def _child(calls: int, save: str, release_gil: bool = False) -> dict[str, Any]:
    """Measure in this process (the package on sys.path is the one being measured)."""
    import numpy as np

    import yprov4ml_hpc as prov

    ring_waits = _count_ring_waits()
    run = prov.start_run(
        "bench_tail", provenance_save_dir=save, system_metrics_interval_s=0, install_signal_handlers=False
    )
    log = run.log_metric
    keys = [f"metric_{k}" for k in range(SERIES)]
    lat = np.zeros(calls, dtype=np.int64)
    view = lat.data
    pc = time.perf_counter_ns
    floor = np.zeros(min(calls, 1_000_000), dtype=np.int64)
    for j in range(floor.shape[0]):  # the timer pair alone
        t0 = pc()
        floor[j] = pc() - t0
    steps = calls // SERIES
    noop_lat = np.zeros(calls, dtype=np.int64)
    pause = time.sleep if release_gil else _no_pause
    _timed_loop(_noop, keys, steps, noop_lat.data, pc, pause)
    j = 0
    started = time.perf_counter()
    for step in range(steps):
        pause(0)
        for key in keys:
            t0 = pc()
            log(key, 0.5, "training", step)
            view[j] = pc() - t0
            j += 1
    loop_s = time.perf_counter() - started
    lat = lat[:j]
    out: dict[str, Any] = {"calls": j, "loop_s": loop_s, "floor": _stats(floor), "log_metric": _stats(lat),
                           "noop": _stats(noop_lat[:j]), "slow_at": _slow_at(lat)}
    # the 10 worst calls and where they fell (a flush of every ring at one step shows as a cluster)
    worst = np.argsort(lat)[-10:][::-1]
    out["worst"] = [{"call": int(i), "step": int(i) // SERIES, "ns": int(lat[i])} for i in worst]
    ranks = Path(run.run_dir) / "ranks"
    writer = getattr(run, "_writer", None)
    if writer is not None:
        writer.flush()
        journal = sum(p.stat().st_size for p in ranks.glob("*.journal"))
        out["journal_bytes_per_point"] = journal / j
        out["writer_points_per_s"] = writer.points / writer.flush_time_s if writer.flush_time_s else None
        out["writer_flush_time_s"] = writer.flush_time_s
    out["ring_waits"] = ring_waits[0] if ring_waits else None
    started = time.perf_counter()
    prov.end_run()
    out["end_run_s"] = time.perf_counter() - started
    out["h5_bytes_per_point"] = sum(p.stat().st_size for p in ranks.glob("*.h5")) / j
    return out


def _count_ring_waits() -> list[int]:
    """Count hand-offs that found the writer a whole ring behind (the producer then waits).

    Wraps ``JournalWriter.wait_for_room`` where the measured tree has one (the journal trees);
    returns a one-element counter, or an empty list for a tree without a writer thread.
    """
    import yprov4ml_hpc

    try:
        from yprov4ml_hpc import _writer
    except ImportError:
        return []
    if Path(_writer.__file__).parent != Path(yprov4ml_hpc.__file__).parent:
        return []  # an editable install elsewhere supplied it: the measured tree has no writer
    counter = [0]
    classes: list[Any] = [_writer.JournalWriter]
    try:
        from yprov4ml_hpc import _writer_process
    except ImportError:
        pass
    else:
        classes.append(_writer_process.ProcessJournalWriter)
    for cls in classes:
        _count_calls(cls, counter)
    return counter


def _count_calls(cls: Any, counter: list[int]) -> None:
    original = cls.wait_for_room

    def counted(self: Any, ring: Any) -> bool:
        counter[0] += 1
        return original(self, ring)

    cls.wait_for_room = counted


def _noop(key: str, value: float, context: str, step: int) -> None:
    """The same call shape as log_metric, doing nothing: the machine's own noise floor."""


def _no_pause(_: float) -> None:
    """The tight loop: the training thread never gives the GIL away on its own."""


def _slow_at(lat: Any) -> dict[str, int]:
    """Where the calls over 200 us fall: first hand-off of a hand-off step, other hand-offs, elsewhere."""
    import numpy as np

    slow = np.nonzero(lat > 200_000)[0]
    step = slow // SERIES
    handoff = (step % HALF == 0) & (step > 0)
    first = handoff & (slow % SERIES == 0)
    return {"first_handoff": int(first.sum()), "other_handoffs": int((handoff & ~first).sum()),
            "elsewhere": int((~handoff).sum())}


def _timed_loop(fn: Any, keys: list[str], steps: int, view: Any, pc: Any, pause: Any = _no_pause) -> None:
    j = 0
    for step in range(steps):
        pause(0)
        for key in keys:
            t0 = pc()
            fn(key, 0.5, "training", step)
            view[j] = pc() - t0
            j += 1


def _stats(values: Any) -> dict[str, float]:
    import numpy as np

    pct = np.percentile(values, [50, 99, 99.9, 99.99])
    return {
        "p50": float(pct[0]), "p99": float(pct[1]), "p99.9": float(pct[2]), "p99.99": float(pct[3]),
        "max": float(values.max()), "mean": float(values.mean()),
        "over_200us": float((values > 200_000).sum()),
    }


def _export(ref: str, into: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "yprov4ml_hpc"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def _measure(pythonpath: Path, calls: int, save: Path, release_gil: bool, writer: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(pythonpath), "YPROV4ML_HPC_CARBON": "0",
           "YPROV4ML_HPC_WRITER": writer}
    proc = subprocess.run(
        [sys.executable, __file__, "--child", str(calls), str(save), *(["--release-gil"] * release_gil)],
        env=env, capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench(calls: int, rounds: int, baseline: str, release_gil: bool = False, writer: str = "thread",
          before_writer: str = "thread") -> dict[str, Any]:
    results: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory(prefix="bench_tail_") as tmp:
        (Path(tmp) / "baseline").mkdir()
        base = _export(baseline, Path(tmp) / "baseline")
        for r in range(rounds):
            order = ["before", "after"] if r % 2 == 0 else ["after", "before"]
            for which in order:
                path = base if which == "before" else ROOT
                chosen = before_writer if which == "before" else writer
                results[which].append(_measure(path, calls, Path(tmp) / f"{which}{r}", release_gil, chosen))
    summary: dict[str, Any] = {}
    for which, runs in results.items():
        summary[which] = {
            key: median([run["log_metric"][key] for run in runs])
            for key in ("p50", "p99", "p99.9", "p99.99", "max", "mean", "over_200us")
        }
        for where in ("first_handoff", "other_handoffs", "elsewhere"):
            summary[which][f"slow_{where}"] = median([run["slow_at"][where] for run in runs])
        summary[which]["noop_max"] = median([run["noop"]["max"] for run in runs])
        summary[which]["noop_over_200us"] = median([run["noop"]["over_200us"] for run in runs])
        summary[which]["floor_p50"] = median([run["floor"]["p50"] for run in runs])
        waits = [run["ring_waits"] for run in runs if run.get("ring_waits") is not None]
        summary[which]["ring_waits"] = median(waits) if waits else None
    after = results["after"]
    for key in ("journal_bytes_per_point", "h5_bytes_per_point", "writer_points_per_s", "end_run_s"):
        values = [run[key] for run in after if run.get(key) is not None]
        summary["after"][key] = median(values) if values else None
    summary["before"]["h5_bytes_per_point"] = median([run["h5_bytes_per_point"] for run in results["before"]])
    summary["before"]["end_run_s"] = median([run["end_run_s"] for run in results["before"]])
    return {"baseline": baseline, "calls": calls, "rounds": rounds, "series": SERIES,
            "release_gil": release_gil, "writer": writer, "before_writer": before_writer,
            "summary": summary, "runs": results}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        print(json.dumps(_child(int(argv[1]), argv[2], release_gil="--release-gil" in argv[3:])))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--baseline", default=DEFAULT_BASELINE, help="git ref measured as 'before'")
    parser.add_argument("--release-gil", action="store_true",
                        help="release the GIL once a step (time.sleep(0)), as a real training step does")
    parser.add_argument("--writer", choices=("thread", "process"), default="process",
                        help="who writes the working tree's journal (start_run's writer=)")
    parser.add_argument("--before-writer", choices=("thread", "process"), default="thread",
                        help="the baseline's writer (ignored by a baseline without the option)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    res: dict[str, Any] = {"benchmark": "tail", "machine": machine_info(), "argv": sys.argv}
    res.update(bench(args.calls, args.rounds, args.baseline, args.release_gil, args.writer,
                     args.before_writer))
    res["seconds"] = time.perf_counter() - started
    write_json(args.out, res)
    for which in ("before", "after"):
        s = res["summary"][which]
        print(f"{which:6s} " + "  ".join(f"{k}={v:,.0f}" if isinstance(v, float) and v > 10 else f"{k}={v}"
                                         for k, v in s.items()), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
