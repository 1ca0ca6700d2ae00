"""Live reader: read a run directory again and again while its job writes, until it ends.

usage: live_reader.py RUN_DIR WORLD_SIZE
Each read is load_run plus every series of every rank (and their values checked: an exact
prefix of what the job logs, with exactly the points the rank's meta counted).  Stops once
summary.json exists (the job has finalized).
A read is *live* when at least one rank was read through its journal (the rank was still
writing, or had not folded yet): only those count as live reads.
Prints {"reads": n, "live_reads": n, "journal_reads": rank reads through a journal,
"problems": [...up to 10], "n_problems": n, "bad_values": [...], "final": {...}, "seconds": s}.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

import yprov4ml_hpc as prov4ml


def main() -> None:
    run_dir, world = Path(sys.argv[1]), int(sys.argv[2])
    reads, live_reads, journal_reads, problems, bad = 0, 0, 0, [], []
    started = time.monotonic()
    deadline = started + 600
    while time.monotonic() < deadline:
        done = (run_dir / "summary.json").exists()
        try:
            data = prov4ml.load_run(run_dir)
        except prov4ml.StorageError:
            time.sleep(0.01)  # no rank file yet
            continue
        reads += 1
        through_journal = sum(1 for r in data.ranks if r.path is not None and r.path.suffix == ".journal")
        journal_reads += through_journal
        live_reads += through_journal > 0
        for name, reason in data.problems:
            problems.append(f"{name}: {reason}"[:300])
        for name, context, rank in data.series_keys():
            if context not in ("training", "validation"):
                continue
            try:
                series = data.series(name, context, rank)
            except Exception as exc:
                problems.append(f"rank {rank} {name}: {type(exc).__name__}: {exc}"[:300])
                continue
            sign = 0.5 if name == "loss" else -1.0
            expected = np.arange(len(series))
            if not (np.array_equal(series.step, expected) and np.array_equal(series.value, expected * sign)):
                bad.append(f"rank {rank} {name}: {len(series)} points not a prefix")
            # One snapshot per read: the series has exactly the points its rank's meta counted.
            counted = next(s.count for s in data.meta(rank).series if (s.name, s.context) == (name, context))
            if len(series) != counted:
                bad.append(f"rank {rank} {name}: {len(series)} points, the meta counted {counted}")
        if done:
            break
    final = prov4ml.load_run(run_dir)
    print(json.dumps({
        "reads": reads, "live_reads": live_reads, "journal_reads": journal_reads,
        "seconds": round(time.monotonic() - started, 1),
        "problems": problems[:10], "n_problems": len(problems), "bad_values": bad[:10],
        "final": {"statuses": [r.status for r in final.ranks], "problems": final.problems,
                  "files": sorted(p.name for p in (run_dir / "ranks").iterdir())},
        "world": world,
    }))


if __name__ == "__main__":
    main()
