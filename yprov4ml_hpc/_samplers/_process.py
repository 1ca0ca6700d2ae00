"""psutil samplers: this rank's process, and the whole node (run by the node leader only).

Each ``read()`` returns ``{series name: value}``; the SamplerSet records them. Both keep their
own reference readings instead of psutil's module-level ``cpu_percent()`` state, which the
training script (or codecarbon) may be using at the same time.
"""

from __future__ import annotations

import time
from typing import Any

import psutil

# Virtual interfaces that mirror or bridge traffic already counted on a real NIC (ifb mirrors
# ingress, veth/docker/bridges forward it) or never leave the host (loopback).
_VIRTUAL_NIC_PREFIXES = ("lo", "ifb", "veth", "docker", "br-", "virbr")


#: Shortest window a CPU percentage is computed over.  The kernel counts CPU time in 10 ms
#: ticks, so over a 1 ms window one tick reads as 1000 % (``log_system_metrics()`` called every
#: batch gave 722 % on a 2-core machine).  Over >= 0.25 s a tick is at most 4 % of a core; a
#: reading sooner repeats the figure of the last complete window.
CPU_MIN_WINDOW_S = 0.25


class ProcessSampler:
    """``process/cpu_pct`` as psutil defines it (100 = one core busy; up to 100 x the logical
    CPUs with several threads) and ``process/rss_bytes`` of the calling process.

    The percentage is the process's CPU time over wall time since the previous complete
    window (>= :data:`CPU_MIN_WINDOW_S`).  A first reading before any window completed gives
    the average since the process started, as ``ps`` does.
    """

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._max_pct = 100.0 * (psutil.cpu_count() or 1)
        self._last = (time.monotonic(), self._cpu_seconds())
        self._pct: float | None = None

    def _cpu_seconds(self) -> float:
        times = self._process.cpu_times()
        return float(times.user + times.system)

    def read(self) -> dict[str, float]:
        with self._process.oneshot():
            now, cpu = time.monotonic(), self._cpu_seconds()
            rss = self._process.memory_info().rss
        last_wall, last_cpu = self._last
        if now - last_wall >= CPU_MIN_WINDOW_S:
            self._pct = 100.0 * max(cpu - last_cpu, 0.0) / (now - last_wall)
            self._last = (now, cpu)
        elif self._pct is None:  # no complete window yet: the average since the process started
            age = max(time.time() - self._process.create_time(), CPU_MIN_WINDOW_S)
            self._pct = 100.0 * cpu / age
        return {"process/cpu_pct": min(self._pct, self._max_pct), "process/rss_bytes": float(rss)}


def _cpu_busy_total(times: Any) -> tuple[float, float]:
    """(busy, total) CPU seconds; guest time is already inside user/nice on Linux."""
    total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
    idle = times.idle + getattr(times, "iowait", 0.0)
    return total - idle, total


def _net_bytes() -> tuple[int, int] | None:
    counters = psutil.net_io_counters(pernic=True)
    real = [c for name, c in counters.items() if not name.startswith(_VIRTUAL_NIC_PREFIXES)]
    if not real:
        return None
    return sum(c.bytes_sent for c in real), sum(c.bytes_recv for c in real)


def _disk_bytes() -> tuple[int, int] | None:
    try:
        counters = psutil.disk_io_counters()  # whole disks, not partitions, on Linux
    except (OSError, RuntimeError):
        return None  # some containers hide /proc/diskstats
    return None if counters is None else (counters.read_bytes, counters.write_bytes)


class NodeSampler:
    """Node-wide CPU % (0-100: the busy share of all CPUs, same window rule as the process),
    memory, and disk/network bytes since the sampler started.

    The I/O series are differences from the start so that a run's figures do not include
    what the node did before it; counter wrap-around is handled by psutil (``nowrap``).
    """

    def __init__(self) -> None:
        self._cpu_last = (time.monotonic(), *_cpu_busy_total(psutil.cpu_times()))
        self._cpu_pct: float | None = None
        self._disk_start = _disk_bytes()
        self._net_start = _net_bytes()

    def read(self) -> dict[str, float]:
        now = time.monotonic()
        busy, total = _cpu_busy_total(psutil.cpu_times())
        last_wall, last_busy, last_total = self._cpu_last
        # Same window rule as the process: over a few ticks the ratio jumps between 0 and 100.
        if now - last_wall >= CPU_MIN_WINDOW_S and total > last_total:
            self._cpu_pct = 100.0 * max(busy - last_busy, 0.0) / (total - last_total)
            self._cpu_last = (now, busy, total)
        elif self._cpu_pct is None:  # no complete window yet: the average since boot
            self._cpu_pct = 100.0 * busy / total if total > 0 else 0.0
        memory = psutil.virtual_memory()
        readings = {
            "node/cpu_pct": min(max(self._cpu_pct, 0.0), 100.0),
            "node/memory_used_bytes": float(memory.used),
            "node/memory_pct": float(memory.percent),
        }
        disk = _disk_bytes()
        if disk is not None and self._disk_start is not None:
            readings["node/disk_read_bytes"] = float(disk[0] - self._disk_start[0])
            readings["node/disk_write_bytes"] = float(disk[1] - self._disk_start[1])
        net = _net_bytes()
        if net is not None and self._net_start is not None:
            readings["node/net_sent_bytes"] = float(net[0] - self._net_start[0])
            readings["node/net_recv_bytes"] = float(net[1] - self._net_start[1])
        return readings
