"""Finalize without MPI: what one poll of rank 0 costs when many ranks have closed their files.

Without MPI (torchrun, srun without mpi4py) rank 0 learns that the others are done from their
rank files.  Before, a poll opened each rank's file for its status (each closed rank once);
now the folder listing says which ranks closed (a ``.h5`` exists only after close) and only
journals are opened.  Both ways are timed in the same process, alternating, over the same
``--ranks`` closed rank files (real ones, written by ``Run``); medians of ``--reps``.

usage: python benchmarks/bench_finalize_poll.py [--ranks 1000] [--reps 3] [--out results/finalize_poll.json]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import warnings
from typing import Any

from _common import median, write_results


def _open_every_file(run: Any, ranks: set[int]) -> set[int]:
    """The poll as it was: every waiting rank's file opened for its status."""
    from yprov4ml_hpc import _constants as C
    from yprov4ml_hpc._reader import read_rank_attrs, scan_rank_files

    files = scan_rank_files(run.run_dir / C.RANKS_DIRNAME).by_rank
    return {rank for rank in ranks if read_rank_attrs(files[rank]).status == C.STATUS_RUNNING}


def measure(ranks: int, reps: int) -> dict[str, Any]:
    os.environ["WORLD_SIZE"] = str(ranks + 1)
    warnings.simplefilter("ignore")
    from yprov4ml_hpc import _finalize
    from yprov4ml_hpc._run import Run

    save = tempfile.mkdtemp(prefix="bench_poll_")
    root: Any = None
    for rank in range(ranks + 1):
        run = Run("poll", provenance_save_dir=save, run_id="job", rank=rank, flush_interval_s=0,
                  install_signal_handlers=False, carbon=False, system_metrics_interval_s=0)
        run.log_metric("loss", 1.0, step=0)
        if rank:
            run.close("finished", "bench")
        else:
            root = run
    waiting = set(range(1, ranks + 1))
    times: dict[str, list[float]] = {"open every file": [], "listing only": []}
    for _ in range(reps):
        for name, poll in (("open every file", _open_every_file), ("listing only", _finalize._still_running)):
            started = time.perf_counter()
            left = poll(root, waiting)
            times[name].append(time.perf_counter() - started)
            assert left == set(), (name, left)  # both see every rank closed
    root.close("finished", "bench")
    shutil.rmtree(save, ignore_errors=True)
    return {"ranks": ranks, "reps": reps, "seconds": {k: median(v) for k, v in times.items()}, "runs": times}


def markdown(result: dict[str, Any]) -> str:
    before, after = result["seconds"]["open every file"], result["seconds"]["listing only"]
    return (
        f"| one poll, {result['ranks']:,} closed ranks | seconds (median of {result['reps']}) |\n|---|---:|\n"
        f"| before: every file opened | {before:.3f} |\n"
        f"| now: folder listing, journals only | {after:.4f} |\n"
        f"| ratio | {before / after:.0f}x |\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    result = measure(args.ranks, args.reps)
    write_results(args.out, "finalize_poll", markdown(result), result=result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
