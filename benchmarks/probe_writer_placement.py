"""Where should the journal writer run?  A probe for issue 10's tail target (not the product).

The training thread's slowest ``log_metric`` calls come from the writer THREAD: each time it
takes the GIL back (a few times per cycle), the training thread waits for the OS to wake it
again, which on a busy or virtualised node costs 50 us to milliseconds.  This probe times a
minimal ring producer (10 series, a 4,096-point ring each, 10^7 calls) three ways, in turn:

- ``none``:    nobody drains the rings (the machine's own noise floor);
- ``thread``:  a Python thread drains them every 2 ms with ``os.write`` (today's design);
- ``process``: a forked process drains them from shared memory (no GIL shared);
- ``aio``:     no drainer: the producer itself submits each full half with POSIX ``aio_write``
               called through ``ctypes.PyDLL`` (which keeps the GIL: no release, no syscall
               that gives it away); glibc's own C helper threads write it, without the GIL.
               Linux x86_64 glibc only (the ``struct aiocb`` layout is spelled out here).

Reported: p99.99 and max (us), calls over 200 us, and MB the drainer wrote (a thread that
starves for the GIL writes less).  There is no back-pressure here: it measures stalls only.

usage: python benchmarks/probe_writer_placement.py [--calls 10000000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import ctypes
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
HALF = CAPACITY // 2
EINPROGRESS = 115


class _AioCb(ctypes.Structure):
    """glibc's ``struct aiocb`` on x86_64 (168 bytes)."""

    _fields_ = [
        ("aio_fildes", ctypes.c_int),
        ("aio_lio_opcode", ctypes.c_int),
        ("aio_reqprio", ctypes.c_int),
        ("aio_buf", ctypes.c_void_p),
        ("aio_nbytes", ctypes.c_size_t),
        ("sigev_value", ctypes.c_void_p),  # struct sigevent (64 bytes) starts here
        ("sigev_signo", ctypes.c_int),
        ("sigev_notify", ctypes.c_int),
        ("sigev_rest", ctypes.c_char * 48),
        ("next_prio", ctypes.c_void_p),
        ("abs_prio", ctypes.c_int),
        ("policy", ctypes.c_int),
        ("error_code", ctypes.c_int),
        ("return_value", ctypes.c_ssize_t),
        ("aio_offset", ctypes.c_int64),
        ("reserved", ctypes.c_char * 32),
    ]


class _AioWriter:
    """Submits ring halves with aio_write from the producer's thread, keeping the GIL."""

    def __init__(self, out: str, values: np.ndarray) -> None:
        assert ctypes.sizeof(_AioCb) == 168, "not glibc x86_64"
        libc = ctypes.PyDLL("libc.so.6")  # PyDLL: the call keeps the GIL
        self._aio_write, self._aio_error = libc.aio_write, libc.aio_error
        self._aio_write.argtypes = self._aio_error.argtypes = [ctypes.POINTER(_AioCb)]
        self.fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.values = values
        self.cbs = [[_AioCb() for _ in range(2)] for _ in range(SERIES)]
        self.busy = [[False, False] for _ in range(SERIES)]
        self.skipped = 0

    def submit(self, series: int, half: int) -> None:
        cb = self.cbs[series][half]
        if self.busy[series][half] and self._aio_error(ctypes.byref(cb)) == EINPROGRESS:
            self.skipped += 1  # no back-pressure in this probe: count it and go on
            return
        cb.aio_fildes, cb.aio_lio_opcode, cb.sigev_notify = self.fd, 1, 1  # LIO_WRITE, SIGEV_NONE
        cb.aio_buf = self.values[series, half * HALF :].ctypes.data
        cb.aio_nbytes = HALF * 8
        if self._aio_write(ctypes.byref(cb)) != 0:
            raise OSError(ctypes.get_errno(), "aio_write failed")
        self.busy[series][half] = True

    def finish(self) -> None:
        for series in range(SERIES):
            for half, cb in enumerate(self.cbs[series]):
                while self.busy[series][half] and self._aio_error(ctypes.byref(cb)) == EINPROGRESS:
                    time.sleep(0.001)
        os.close(self.fd)


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
        aio = _AioWriter(out, values) if mode == "aio" else None
        submit = aio.submit if aio is not None else None
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
                if submit is not None and (h + 1) % HALF == 0:  # a half is full: hand it off
                    submit(s, (h // HALF) % 2)
                view[j] = pc() - t0
                j += 1
        heads[SERIES] = 1
        if aio is not None:
            aio.finish()
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
        for mode in ("none", "thread", "process", "aio"):
            proc = subprocess.run([sys.executable, __file__, "--child", mode, str(args.calls)],
                                  capture_output=True, text=True, check=True)
            print(f"round {r} {mode:8s} {proc.stdout.strip()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
