"""psutil samplers: this rank's process, and the whole node (run by the node leader only).

Each ``read()`` returns ``{series name: value}``; the SamplerSet records them. Both keep their
own reference readings instead of psutil's module-level ``cpu_percent()`` state, which the
training script (or codecarbon) may be using at the same time.
"""

from __future__ import annotations

from typing import Any

import psutil

# Virtual interfaces that mirror or bridge traffic already counted on a real NIC (ifb mirrors
# ingress, veth/docker/bridges forward it) or never leave the host (loopback).
_VIRTUAL_NIC_PREFIXES = ("lo", "ifb", "veth", "docker", "br-", "virbr")


class ProcessSampler:
    """``process/cpu_pct`` (100 = one core busy; above 100 with several threads) and
    ``process/rss_bytes`` of the calling process."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._process.cpu_percent(None)  # the first call only sets the reference point

    def read(self) -> dict[str, float]:
        with self._process.oneshot():
            cpu = self._process.cpu_percent(None)
            rss = self._process.memory_info().rss
        return {"process/cpu_pct": float(cpu), "process/rss_bytes": float(rss)}


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
    """Node-wide CPU %, memory, and disk/network bytes since the sampler started.

    The I/O series are differences from the start so that a run's figures do not include
    what the node did before it; counter wrap-around is handled by psutil (``nowrap``).
    """

    def __init__(self) -> None:
        self._cpu_last = _cpu_busy_total(psutil.cpu_times())
        self._cpu_pct = 0.0
        self._disk_start = _disk_bytes()
        self._net_start = _net_bytes()

    def read(self) -> dict[str, float]:
        busy, total = _cpu_busy_total(psutil.cpu_times())
        last_busy, last_total = self._cpu_last
        if total > last_total:  # else the kernel's 10 ms tick has not moved: keep the last value
            self._cpu_pct = min(100.0 * max(busy - last_busy, 0.0) / (total - last_total), 100.0)
            self._cpu_last = (busy, total)
        memory = psutil.virtual_memory()
        readings = {
            "node/cpu_pct": self._cpu_pct,
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
