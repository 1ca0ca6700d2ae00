"""Crash-consistency subject: a param, then two flushes of two series, with markers between.

usage: two_flushes.py SAVE_DIR FIRST SECOND

Prints ``READY`` once imported and waits for a line on stdin (so a tracer can attach after the
imports), then prints the run directory on stdout.  Writes ``MARK0`` to stderr before the first data flush,
``MARK1`` before the second and ``DONE`` after it (plain write(2) calls, so a syscall trace
shows which of the file's pwrite64 calls belong to which flush), then exits at once.
Series as in job_worker.py: "loss"/"training" = step * 0.5, "acc"/"validation" = -step.
"""

from __future__ import annotations

import os
import sys

import yprov4ml_hpc as prov4ml


def log(start: int, stop: int) -> None:
    for step in range(start, stop):
        prov4ml.log_metric("loss", step * 0.5, context="training", step=step)
        prov4ml.log_metric("acc", -float(step), context="validation", step=step)


def main() -> None:
    save_dir, first, second = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    print("READY", flush=True)
    sys.stdin.readline()
    run = prov4ml.start_run(
        "flushes", provenance_save_dir=save_dir, buffer_size=1 << 16, flush_interval_s=0,
        system_metrics_interval_s=0, install_signal_handlers=False,
    )
    print(run.run_dir, flush=True)
    prov4ml.log_param("lr", 0.5)  # flushed by log_param itself
    log(0, first)
    os.write(2, b"MARK0\n")
    run.flush()
    log(first, first + second)
    os.write(2, b"MARK1\n")
    run.flush()
    os.write(2, b"DONE\n")
    os._exit(0)


if __name__ == "__main__":
    main()
