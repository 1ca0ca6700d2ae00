"""Crash-test subject: log a known amount, flush part of it, then wait to be killed.

usage: log_then_wait.py SAVE_DIR FLUSHED UNFLUSHED [--chain-handler] [--keep-living] [--no-end] [--raise]
Prints the run directory then READY once the unflushed points are logged.
"""

from __future__ import annotations

import signal
import sys
import time

import yprov4ml_hpc as prov4ml


def main() -> None:
    save_dir, flushed, unflushed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    flags = set(sys.argv[4:])
    if "--chain-handler" in flags:

        def previous(signum: int, frame: object) -> None:
            print("PREVIOUS-HANDLER-RAN", flush=True)
            if "--keep-living" not in flags:  # a handler that lets the process go on
                raise SystemExit(42)

        signal.signal(signal.SIGTERM, previous)
    run = prov4ml.start_run("crash", provenance_save_dir=save_dir, buffer_size=1 << 20, flush_interval_s=0)
    prov4ml.log_param("flushed", flushed)
    for i in range(flushed):
        prov4ml.log_metric("loss", i * 0.5, context="training")
    run.flush()
    for i in range(flushed, flushed + unflushed):
        prov4ml.log_metric("loss", i * 0.5, context="training")
    print(run.run_dir, flush=True)
    if "--raise" in flags:
        raise RuntimeError("boom")
    if "--no-end" in flags:
        print("READY", flush=True)
        return
    print("READY", flush=True)
    time.sleep(120)


if __name__ == "__main__":
    main()
