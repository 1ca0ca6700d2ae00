"""A rank whose journal is written by its writer process (start_run(writer="process")).

usage: writer_process.py SAVE_DIR MODE [SEED]

- ``kill_writer``: log from the main thread while another thread SIGKILLs the writer process
  at a random moment (seeded); the rank must take over and end with every point exactly once.
- ``wait``: log 10,000 points a series (buffer_size 1000: a hand-off every 500), print
  ``{"ready": ..., "writer_pid": ...}`` and sleep: the test kills or signals this process.
- ``fork``: fork children (os.fork, a fork Pool) mid-run; the parent's run must be intact.
- ``traced``: wait for a line on stdin (the test attaches strace to the writer process), then
  log 6,000 points a series and a param.

Prints JSON lines: ``run_dir``, ``warnings``, ``done``.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import sys
import threading
import time
import warnings

import yprov4ml_hpc as prov4ml

SERIES = ("loss", "acc")


def _say(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


def _log(run: prov4ml.Run, first: int, count: int) -> None:
    for step in range(first, first + count):
        for name in SERIES:
            run.log_metric(name, step * 0.5, "training", step)


def _square(x: int) -> int:
    return x * x


def main() -> None:
    save, mode = sys.argv[1], sys.argv[2]
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    warnings.simplefilter("always")
    with warnings.catch_warnings(record=True) as caught:
        run = prov4ml.start_run(
            "writer_process", provenance_save_dir=save, writer="process", buffer_size=1000,
            flush_interval_s=0, system_metrics_interval_s=0, disable_codecarbon=True,
        )
        _say(run_dir=str(run.run_dir), writer_pid=run._writer._proc.pid)
        if mode == "kill_writer":
            delay = random.Random(seed).uniform(0.0, 0.4)
            writer_pid = run._writer._proc.pid
            killer = threading.Timer(delay, os.kill, (writer_pid, signal.SIGKILL))
            killer.start()
            started = time.monotonic()
            step = 0
            while time.monotonic() - started < delay + 0.3:
                _log(run, step, 1000)
                step += 1000
            killer.join()
            run.log_param("after_kill", step)
            _log(run, step, 1000)
            _say(points=step + 1000)
        elif mode == "traced":  # the test attaches strace to the writer process, then says go
            sys.stdin.readline()
            _log(run, 0, 3000)
            run.log_param("middle", 3000)
            _log(run, 3000, 3000)
            _say(points=6000)
        elif mode == "wait":
            _log(run, 0, 10_000)
            _say(ready=True)
            while True:
                time.sleep(0.1)
        elif mode == "fork":
            _log(run, 0, 3000)
            for _ in range(3):
                pid = os.fork()
                if pid == 0:
                    os._exit(0)
                os.waitpid(pid, 0)
            context = multiprocessing.get_context("fork")
            for _ in range(5):
                with context.Pool(2) as pool:
                    assert pool.map(_square, range(20)) == [x * x for x in range(20)]
            _log(run, 3000, 3000)
            _say(points=6000)
        prov4ml.end_run()
    _say(warnings=[str(w.message) for w in caught], done=True)


if __name__ == "__main__":
    main()
