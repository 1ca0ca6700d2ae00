"""Random-kill soak subject: fork a rank, let it log, SIGKILL it at a random moment, read it.

usage: kill_soak.py SAVE_DIR KILLS SEED

The library is imported once; each round forks a child that starts its own run (buffer_size
drawn from 1/16/256/4096 so kills land in hand-offs, writes and waits alike; the 50 ms flush
timer on), logs three series and a param every 500 steps, and after each explicit flush
reports the number of points per series that are on disk through a pipe.  The parent kills it
after a random 0-300 ms, then reads the run with load_run and checks: readable (no problem
reported), status running, each series an exact prefix 0..n-1 of what was logged (values
too), n at least the last reported flush, the params a prefix as well.

Prints one JSON line per failed round and a final {"kills": N, "failures": F}.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
import warnings

import numpy as np

import yprov4ml_hpc as prov4ml

SERIES = (("loss", "training", 0.5), ("acc", "validation", -1.0), ("lr", "training", 0.25))


def child(save_dir: str, round_no: int, buffer_size: int, report: int) -> None:
    warnings.simplefilter("ignore")
    run = prov4ml.start_run("soak", provenance_save_dir=save_dir, run_id=f"k{round_no}",
                            buffer_size=buffer_size, flush_interval_s=0.05, system_metrics_interval_s=0,
                            install_signal_handlers=False)
    step = 0
    while True:
        for name, context, sign in SERIES:
            prov4ml.log_metric(name, step * sign, context=context, step=step)
        step += 1
        if step % 500 == 0:
            prov4ml.log_param(f"p{step // 500}", step)
        if step % 1000 == 0:
            run.flush()
            os.write(report, f"{step}\n".encode())


def check(run_dir: str, flushed: int) -> str:
    try:
        data = prov4ml.load_run(run_dir)
    except prov4ml.Yprov4mlError as exc:
        return f"unreadable run: {exc}"
    if data.problems:
        return f"damaged: {data.problems}"
    if [r.status for r in data.ranks] != ["running"]:
        return f"status {[r.status for r in data.ranks]}"
    params = data.params(0)
    expected = {f"p{k}": 500 * k for k in range(1, len(params) + 1)}
    if params != expected:
        return f"params not a prefix: {sorted(params)[:5]}"
    for name, context, sign in SERIES:
        if (name, context, 0) not in data.series_keys():
            if flushed:
                return f"{name} missing after {flushed} flushed"
            continue
        series = data.series(name, context, 0)
        n = len(series)
        if n < flushed:
            return f"{name}: {n} points < {flushed} reported flushed"
        expected = np.arange(n)
        if not (np.array_equal(series.step, expected) and np.array_equal(series.value, expected * sign)):
            return f"{name}: not an exact prefix of what was logged"
    return ""


def main() -> None:
    save_dir, kills, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(seed)
    failures = 0
    for round_no in range(kills):
        buffer_size = rng.choice((1, 16, 256, 4096))
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            try:
                child(save_dir, round_no, buffer_size, write)
            finally:
                os._exit(1)
        os.close(write)
        time.sleep(rng.uniform(0.0, 0.3))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        with os.fdopen(read) as pipe:
            reported = [int(line) for line in pipe.read().split()]
        run_dir = os.path.join(save_dir, f"soak_k{round_no}")
        ranks = os.path.join(run_dir, "ranks")
        if not os.path.isdir(ranks) or not [n for n in os.listdir(ranks) if n.startswith("rank_")]:
            continue  # killed inside start_run, before its journal existed: nothing to check
        problem = check(run_dir, reported[-1] if reported else 0)
        if problem:
            failures += 1
            print(json.dumps({"round": round_no, "buffer_size": buffer_size, "problem": problem}), flush=True)
    print(json.dumps({"kills": kills, "failures": failures}), flush=True)


if __name__ == "__main__":
    main()
