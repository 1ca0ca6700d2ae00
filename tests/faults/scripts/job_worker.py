"""Fault-injection subject: one rank of a job that logs known values and reports its flushes.

usage: job_worker.py SAVE_DIR CTL_DIR MODE [options]

Launched under ``mpiexec -n N`` (MPI launcher), or N times with ``SLURM_PROCID`` /
``SLURM_NTASKS`` / ``SLURM_JOB_ID`` set and no MPI (what ``srun`` does for a non-MPI job).

Every rank logs two series whose values are a pure function of (rank, step), so a test can
check what it reads back point by point:

    "loss"  (context "training")    value = rank * 1e6 + step * 0.5
    "acc"   (context "validation")  value = -(rank * 1e6 + step)

MODE ``stream``: log BATCH points per series, flush, then atomically write
``CTL_DIR/progress_<rank>`` (the number of points per series known to be flushed), sleep a
few ms, repeat until MAX points, then idle.  A SIGKILL at any moment must leave at least
``progress`` and at most ``progress + BATCH`` points per series (whole batches only: the
ring is larger than a batch and the timer is off, so nothing else flushes).

MODE ``pause``: log FLUSHED points, flush, log UNFLUSHED more (they stay in memory, except on
ranks listed in ``--big-rank``, which log BIG more), write ``CTL_DIR/ready_<rank>``, idle.

MODE ``finish``: log FLUSHED points, end_run, write ``CTL_DIR/done_<rank>``, exit 0.

MODE ``timer``: like ``pause`` but never flushes itself: the background timer
(``--flush-interval`` seconds) is the only thing that writes the points.

``--gate FILE``: wait until FILE exists before start_run (to start several jobs at once).

Every rank writes ``CTL_DIR/pid_<rank>``; rank 0 writes ``CTL_DIR/run_dir``.  The process never
lives longer than ``--max-life`` seconds (exit 3), so a forgotten job cannot linger.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

import yprov4ml_hpc as prov4ml


def loss_value(rank: int, step: int) -> float:
    return rank * 1e6 + step * 0.5


def acc_value(rank: int, step: int) -> float:
    return -(rank * 1e6 + step)


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def log_range(start: int, stop: int, rank: int) -> None:
    log_metric = prov4ml.log_metric
    for step in range(start, stop):
        log_metric("loss", loss_value(rank, step), context="training", step=step)
        log_metric("acc", acc_value(rank, step), context="validation", step=step)


def idle(deadline: float) -> None:
    while time.monotonic() < deadline:
        time.sleep(0.05)
    sys.exit(3)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("save_dir")
    parser.add_argument("ctl_dir")
    parser.add_argument("mode", choices=["stream", "pause", "finish", "timer"])
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--max", type=int, default=400_000)
    parser.add_argument("--flushed", type=int, default=1000)
    parser.add_argument("--unflushed", type=int, default=300)
    parser.add_argument("--big-rank", type=int, action="append", default=[])
    parser.add_argument("--big", type=int, default=300_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-id", default=None)
    parser.add_argument("--max-life", type=float, default=120.0)
    parser.add_argument("--gate", default=None)
    parser.add_argument("--flush-interval", type=float, default=0.0)
    args = parser.parse_args()
    deadline = time.monotonic() + args.max_life
    ctl = Path(args.ctl_dir)
    if args.gate is not None:
        while not Path(args.gate).exists():
            if time.monotonic() > deadline:
                sys.exit(3)
            time.sleep(0.001)

    # Only the big ranks need a ring for BIG points (the launcher tells the rank before MPI does).
    env_rank = int(os.environ.get("PMI_RANK") or os.environ.get("SLURM_PROCID") or 0)
    big = args.big if env_rank in args.big_rank else 0
    # A ring hands each full half to the journal writer: halves of twice the largest batch keep
    # every point in memory until the explicit flush (or the signal), as the cases expect.
    ring = max(args.batch, args.flushed, args.unflushed, big) * 4
    run = prov4ml.start_run(
        "faults",
        provenance_save_dir=args.save_dir,
        run_id=args.run_id,
        buffer_size=ring,
        flush_interval_s=args.flush_interval if args.mode == "timer" else 0,
    )
    rank = run.rank
    write_atomic(ctl / f"pid_{rank}", str(os.getpid()))
    if rank == 0:
        write_atomic(ctl / "run_dir", str(run.run_dir))
    prov4ml.log_param("mode", args.mode)
    prov4ml.log_param("batch", args.batch)

    if args.mode == "finish":
        log_range(0, args.flushed, rank)
        prov4ml.end_run()
        write_atomic(ctl / f"done_{rank}", str(args.flushed))
        return

    if args.mode == "timer":
        log_range(0, args.flushed, rank)
        write_atomic(ctl / f"ready_{rank}", str(args.flushed))
        idle(deadline)

    if args.mode == "pause":
        log_range(0, args.flushed, rank)
        run.flush()
        extra = args.big if rank in args.big_rank else args.unflushed
        log_range(args.flushed, args.flushed + extra, rank)
        write_atomic(ctl / f"ready_{rank}", str(args.flushed + extra))
        idle(deadline)

    rng = random.Random(args.seed * 1000 + rank)
    done = 0
    while done < args.max and time.monotonic() < deadline:
        log_range(done, done + args.batch, rank)
        run.flush()
        done += args.batch
        write_atomic(ctl / f"progress_{rank}", str(done))
        time.sleep(rng.uniform(0.0, 0.004))
    idle(deadline)


if __name__ == "__main__":
    main()
