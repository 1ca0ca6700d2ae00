"""Where should the journal writer run?  A probe for issue 10's tail target (not the product).

The training thread's slowest ``log_metric`` calls come from the writer THREAD: each time it
takes the GIL back (a few times per cycle), the training thread waits for the OS to wake it
again, which on a busy or virtualised node costs 50 us to milliseconds.  This probe times a
minimal ring producer (10 series, a 4,096-point ring each, 10^7 calls) three ways, in turn:

- ``none``:    nobody drains the rings (the machine's own noise floor);
- ``thread``:  a Python thread drains them every 2 ms with ``os.write`` (today's design);
- ``process``: a forked process drains them from shared memory (no GIL shared).

Reported: p99.99 and max (us), calls over 200 us, and MB the drainer wrote (a thread that
starves for the GIL writes less).  There is no back-pressure here: it measures stalls only.

usage: python benchmarks/probe_writer_placement.py [--calls 10000000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing import shared_memory

import numpy as np

SERIES, CAPACITY = 10, 4096


def _drain(heads: np.ndarray, values: np.ndarray, out: str, poll_s: float = 0.002) -> None:
    tails = [0] * SERIES
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    while heads[SERIES] == 0:  # the producer sets the last slot when it is done
        for s in range(SERIES):
            head, tail = int(heads[s]), tails[s]
            if head - tail >= CAPACITY // 2:
                a, b = tail % CAPACITY, head % CAPACITY
                chunk = values[s, a:b] if b > a else np.concatenate([values[s, a:], values[s, :b]])
                os.write(fd, chunk.tobytes())
                tails[s] = head
        time.sleep(poll_s)
    os.close(fd)


def _child(mode: str, calls: int) -> dict[str, float]:
    shm = shared_memory.SharedMemory(create=True, size=SERIES * CAPACITY * 8 + 8 * (SERIES + 1))
    try:
        values = np.ndarray((SERIES, CAPACITY), dtype=np.float64, buffer=shm.buf)
        heads = np.ndarray(SERIES + 1, dtype=np.int64, buffer=shm.buf, offset=SERIES * CAPACITY * 8)
        heads[:] = 0
        out = os.path.join(tempfile.mkdtemp(prefix="probe_writer_"), "journal")
        pid = 0
        if mode == "process":
            pid = os.fork()
            if pid == 0:
                _drain(heads, values, out)
                os._exit(0)
        elif mode == "thread":
            threading.Thread(target=_drain, args=(heads, values, out), daemon=True).start()
        lat = np.zeros(calls, dtype=np.int64)
        view, pc = lat.data, time.perf_counter_ns
        head_view, value_views = heads.data, [values[s].data for s in range(SERIES)]
        j = 0
        for _step in range(calls // SERIES):
            for s in range(SERIES):
                t0 = pc()
                h = head_view[s]
                value_views[s][h % CAPACITY] = 0.5
                head_view[s] = h + 1
                view[j] = pc() - t0
                j += 1
        heads[SERIES] = 1
        if pid:
            os.waitpid(pid, 0)
        else:
            time.sleep(0.05)
        lat = lat[:j]
        written = os.path.getsize(out) if os.path.exists(out) else 0
        return {"p99.99_us": float(np.percentile(lat, 99.99)) / 1e3, "max_us": float(lat.max()) / 1e3,
                "over_200us": int((lat > 200_000).sum()), "written_mb": written / 1e6}
    finally:
        shm.close()
        shm.unlink()


def main() -> int:
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(_child(sys.argv[2], int(sys.argv[3]))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    for r in range(args.rounds):
        for mode in ("none", "thread", "process"):
            proc = subprocess.run([sys.executable, __file__, "--child", mode, str(args.calls)],
                                  capture_output=True, text=True, check=True)
            print(f"round {r} {mode:8s} {proc.stdout.strip()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
