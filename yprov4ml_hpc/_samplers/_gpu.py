"""The GPU sampler: cheap NVML readings every interval, the energy counter at <= 1 Hz.

It only turns backend answers into ``{series name: value}`` dicts in W, J, %, bytes, C, MHz;
the :class:`~yprov4ml_hpc._samplers._thread.SamplerSet` decides when to call it and records.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from yprov4ml_hpc._samplers._nvml import (
    NvmlBackend,
    NvmlNotSupported,
    NvmlQueryError,
    ReplayBackend,
    open_backend,
    owned_gpus,
)

from .. import _constants as C

METHOD_COUNTER = "nvml_energy_counter"
METHOD_POWER_INTEGRATION = "nvml_power_integration"

# Cheap queries (2-12 us each on an H100, tests/fixtures/nvml/h100_call_costs_us.json), in the
# order they are read. Each maps one backend call to one or more series suffixes.
_CheapQuery = Callable[[NvmlBackend, int], dict[str, float]]


def _power(backend: NvmlBackend, index: int) -> dict[str, float]:
    return {"power_w": backend.power_mw(index) / 1000.0}


def _utilization(backend: NvmlBackend, index: int) -> dict[str, float]:
    gpu, memory = backend.utilization(index)
    return {"utilization_pct": float(gpu), "memory_utilization_pct": float(memory)}


def _memory(backend: NvmlBackend, index: int) -> dict[str, float]:
    return {"memory_used_bytes": float(backend.memory(index)[0])}


def _temperature(backend: NvmlBackend, index: int) -> dict[str, float]:
    return {"temperature_c": float(backend.temperature_c(index))}


def _sm_clock(backend: NvmlBackend, index: int) -> dict[str, float]:
    return {"sm_clock_mhz": float(backend.sm_clock_mhz(index))}


def _fan(backend: NvmlBackend, index: int) -> dict[str, float]:
    return {"fan_speed_pct": float(backend.fan_speed_pct(index))}


CHEAP_QUERIES: tuple[tuple[str, _CheapQuery], ...] = (
    ("power", _power),
    ("utilization", _utilization),
    ("memory", _memory),
    ("temperature", _temperature),
    ("sm_clock", _sm_clock),
    ("fan", _fan),  # 'Not Supported' on data-centre GPUs: dropped quietly after one try
)


class GpuSampler:
    """Readings of the GPUs one rank owns.

    Energy is the NVML counter difference since the first read (mJ -> J), so it is exact to
    the counter's resolution whatever the sampling interval. A GPU without the counter
    (pre-Volta) falls back to integrating its power readings, and says so in :attr:`methods`.
    A query that fails is dropped for that GPU: quietly when unsupported, else with one
    ``warn`` call per GPU.
    """

    def __init__(self, backend: NvmlBackend, gpus: Sequence[int], warn: Callable[[str], None]) -> None:
        self.backend = backend
        self.gpus = list(gpus)
        self._warn = warn
        self._dropped: set[tuple[int, str]] = set()
        self._warned_gpus: set[int] = set()
        self._baseline_mj: dict[int, int] = {}
        self._energy_j: dict[int, float] = {}
        self._methods: dict[int, str] = {g: METHOD_COUNTER for g in self.gpus}
        self._last_power: dict[int, tuple[float, int]] = {}  # gpu -> (W, time_ns), integration only

    @property
    def methods(self) -> dict[str, str]:
        return {f"gpu{g}/energy_j": method for g, method in self._methods.items()}

    def _query(self, gpu: int, name: str, query: _CheapQuery) -> dict[str, float]:
        if (gpu, name) in self._dropped:
            return {}
        try:
            return query(self.backend, gpu)
        except NvmlNotSupported:
            self._dropped.add((gpu, name))
        except NvmlQueryError as exc:
            self._dropped.add((gpu, name))
            self._warn_gpu(gpu, f"NVML query {name!r} failed on GPU {gpu} ({exc}); no longer sampled")
        return {}

    def _warn_gpu(self, gpu: int, message: str) -> None:
        """One warning per GPU: a lost GPU or a permission error fails every query alike."""
        if gpu not in self._warned_gpus:
            self._warned_gpus.add(gpu)
            self._warn(message)

    def read(self, now_ns: int) -> dict[str, float]:
        """One round of the cheap queries for every owned GPU."""
        readings: dict[str, float] = {}
        for gpu in self.gpus:
            for name, query in CHEAP_QUERIES:
                values = self._query(gpu, name, query)
                readings.update({f"gpu{gpu}/{key}": value for key, value in values.items()})
                if name == "power" and values and self._methods.get(gpu) == METHOD_POWER_INTEGRATION:
                    self._integrate(gpu, values["power_w"], now_ns)
        return readings

    def read_energy(self, now_ns: int) -> dict[str, float]:
        """Cumulative energy (J) per owned GPU since the first call: costs ~4 ms per GPU."""
        for gpu in list(self._methods):
            if self._methods[gpu] == METHOD_COUNTER:
                try:
                    counter_mj = self.backend.energy_mj(gpu)
                except NvmlNotSupported:  # pre-Volta: integrate power from now on
                    self._methods[gpu] = METHOD_POWER_INTEGRATION
                except NvmlQueryError as exc:
                    del self._methods[gpu]
                    self._energy_j.pop(gpu, None)
                    self._warn_gpu(gpu, f"NVML energy counter failed on GPU {gpu} ({exc}); no energy for it")
                    continue
                else:
                    baseline = self._baseline_mj.setdefault(gpu, counter_mj)
                    self._energy_j[gpu] = (counter_mj - baseline) / 1000.0
                    continue
            power = self._query(gpu, "power", _power)
            if power:
                self._integrate(gpu, power["power_w"], now_ns)
        return {f"gpu{g}/energy_j": joules for g, joules in self._energy_j.items()}

    def _integrate(self, gpu: int, power_w: float, now_ns: int) -> None:
        """Trapezoid rule between successive power readings (fallback without the counter)."""
        last = self._last_power.get(gpu)
        energy = self._energy_j.setdefault(gpu, 0.0)
        if last is not None and now_ns > last[1]:
            self._energy_j[gpu] = energy + (last[0] + power_w) / 2.0 * (now_ns - last[1]) / 1e9
        if last is None or now_ns >= last[1]:
            self._last_power[gpu] = (power_w, now_ns)


def open_gpu_sampler(
    clock_ns: Callable[[], int],
    gpu_ids: Sequence[int] | None,
    local_rank: int,
    local_size: int,
    warn: Callable[[str], None],
) -> tuple[GpuSampler | None, dict[str, Any], str | None]:
    """Open NVML and keep the GPUs this rank owns (DESIGN section 3).

    Returns ``(sampler or None, facts for SamplerSet.info, why NVML is unusable or None)``;
    a rank that owns no GPU gets no sampler and releases NVML at once.
    """
    backend, why = open_backend(clock_ns)
    if backend is None:
        return None, {}, why
    count = backend.device_count()
    uuids = []
    for index in range(count):
        try:
            uuids.append(backend.uuid(index))
        except NvmlQueryError:
            uuids.append("")
    cuda_visible = os.environ.get(C.ENV_CUDA_VISIBLE_DEVICES)
    gpus = owned_gpus(gpu_ids, cuda_visible, local_rank, local_size, count, uuids=uuids)
    dropped = sorted(set(gpu_ids or ()) - set(gpus))
    if dropped:
        warn(f"gpu_ids {dropped} are not GPUs of this node ({count} GPUs); skipped")
    facts = {
        "gpu_backend": backend.kind,
        "gpu_uuids": {str(i): uuid for i, uuid in enumerate(uuids)},
        "nvml_replay_trace": backend.path if isinstance(backend, ReplayBackend) else None,
    }
    if not gpus:
        backend.close()
        return None, facts, None
    return GpuSampler(backend, gpus, warn), facts, None
