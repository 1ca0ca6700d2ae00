"""A small training job for the e2e tests, run under mpiexec (or alone, with RANK/WORLD_SIZE).

usage: mpi_job.py SAVE_DIR MODE [--rank-arg R] [--steps N] [--run-id ID] [--timeout S]

MODE:
  ok     every rank logs and calls end_run
  kill   rank R flushes N points, logs 7 more (never flushed), waits until the other ranks
         have closed their files, then SIGKILLs itself (what the OOM killer does)
  sleep  rank R never calls end_run (sleeps); the others print RETURNED <rank> <seconds>
Rank 0 prints ``RUN_DIR <path>`` as soon as the run directory exists.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

import h5py

import yprov4ml_hpc as prov4ml

UNFLUSHED = 7


def loss(rank: int, step: int) -> float:
    return 50.0 / (step + 1) + rank


def wait_until_closed(run_dir: Path, ranks: list[int], limit_s: float = 60.0) -> None:
    deadline = time.monotonic() + limit_s
    for rank in ranks:
        path = run_dir / "ranks" / f"rank_{rank:06d}.h5"
        while time.monotonic() < deadline:
            try:
                with h5py.File(path, "r", locking=False) as handle:
                    if handle.attrs["status"] != "running":
                        break
            except (OSError, KeyError):
                pass
            time.sleep(0.05)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("save_dir")
    parser.add_argument("mode", choices=("ok", "kill", "sleep"))
    parser.add_argument("--rank-arg", type=int, default=1)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--run-id", default=None)
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args()

    run = prov4ml.start_run(
        "e2e",
        provenance_save_dir=args.save_dir,
        run_id=args.run_id,
        buffer_size=1_000_000,  # only explicit flushes write: the test knows what is on disk
        flush_interval_s=0,
        finalize_timeout_s=args.timeout,
    )
    if run.rank == 0:
        print(f"RUN_DIR {run.run_dir}", flush=True)
    prov4ml.log_param("lr", 0.01)
    prov4ml.log_param("world", run.world_size)
    for step in range(args.steps):
        prov4ml.log_metric("loss", loss(run.rank, step), context=prov4ml.Context.TRAINING, step=step)
    run.flush()
    chosen = run.rank == args.rank_arg
    if args.mode == "kill" and chosen:
        for step in range(args.steps, args.steps + UNFLUSHED):
            prov4ml.log_metric("loss", loss(run.rank, step), context=prov4ml.Context.TRAINING, step=step)
        wait_until_closed(run.run_dir, [r for r in range(run.world_size) if r != run.rank])
        os.kill(os.getpid(), signal.SIGKILL)
    if args.mode == "sleep" and chosen:
        time.sleep(600)  # the test kills the whole job when it has seen the others return
        return 1
    started = time.monotonic()
    prov4ml.end_run()
    print(f"RETURNED {run.rank} {time.monotonic() - started:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
