"""NVML access for the GPU sampler: one small backend interface, two backends, GPU ownership.

The sampler code never talks to ``pynvml`` directly: it asks a backend for "device count",
"power of device i", "energy counter of device i", ... Two backends answer:

- :class:`PynvmlBackend` over the real driver (``pynvml`` is imported lazily, inside
  :func:`open_backend`, so importing this module costs nothing on a machine without a GPU);
- :class:`ReplayBackend`, selected by ``YPROV4ML_HPC_NVML_REPLAY=path/to/trace.json``, which
  serves a recorded trace (``tests/fixtures/nvml/h100_trace.json``) according to the elapsed
  time of an injectable clock, so tests step through a real H100 run deterministically.

Both raise :class:`NvmlNotSupported` for queries the device does not support (fan speed on an
H100) and :class:`NvmlQueryError` for any other failure.
"""

from __future__ import annotations

import bisect
import importlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from yprov4ml_hpc._constants import ENV_NVML_REPLAY
from yprov4ml_hpc._errors import ConfigError

GPU_EXTRA_HINT = 'pip install "yprov4ml-hpc[gpu]"'


class NvmlQueryError(Exception):
    """An NVML query failed (device lost, no permission, ...)."""


class NvmlNotSupported(NvmlQueryError):
    """The device does not support this query (NVML 'Not Supported'); skip it quietly."""


class NvmlBackend(Protocol):
    """What the GPU sampler needs from NVML, in NVML units (mW, mJ, %, bytes, C, MHz)."""

    kind: str

    def device_count(self) -> int: ...
    def uuid(self, index: int) -> str: ...
    def power_mw(self, index: int) -> int: ...
    def energy_mj(self, index: int) -> int: ...
    def utilization(self, index: int) -> tuple[int, int]: ...  # (gpu %, memory %)
    def memory(self, index: int) -> tuple[int, int, int]: ...  # (used, free, total) bytes
    def temperature_c(self, index: int) -> int: ...
    def sm_clock_mhz(self, index: int) -> int: ...
    def fan_speed_pct(self, index: int) -> int: ...
    def close(self) -> None: ...


class PynvmlBackend:
    """The real driver through nvidia-ml-py (module ``pynvml``); nvmlInit here, nvmlShutdown in close."""

    kind = "pynvml"

    def __init__(self, nvml: Any) -> None:
        self._nvml = nvml
        nvml.nvmlInit()
        self._count = int(nvml.nvmlDeviceGetCount())
        self._handles: dict[int, Any] = {}

    def _call(self, index: int, fn: Callable[..., Any], *args: Any) -> Any:
        nvml = self._nvml
        try:
            handle = self._handles.get(index)
            if handle is None:
                handle = self._handles[index] = nvml.nvmlDeviceGetHandleByIndex(index)
            return fn(handle, *args)
        except nvml.NVMLError as exc:
            if getattr(exc, "value", None) == nvml.NVML_ERROR_NOT_SUPPORTED:
                raise NvmlNotSupported(str(exc)) from None
            raise NvmlQueryError(f"{type(exc).__name__}: {exc}") from None

    def device_count(self) -> int:
        return self._count

    def uuid(self, index: int) -> str:
        value = self._call(index, self._nvml.nvmlDeviceGetUUID)
        return value.decode() if isinstance(value, bytes) else str(value)

    def power_mw(self, index: int) -> int:
        return int(self._call(index, self._nvml.nvmlDeviceGetPowerUsage))

    def energy_mj(self, index: int) -> int:
        return int(self._call(index, self._nvml.nvmlDeviceGetTotalEnergyConsumption))

    def utilization(self, index: int) -> tuple[int, int]:
        rates = self._call(index, self._nvml.nvmlDeviceGetUtilizationRates)
        return int(rates.gpu), int(rates.memory)

    def memory(self, index: int) -> tuple[int, int, int]:
        info = self._call(index, self._nvml.nvmlDeviceGetMemoryInfo)
        return int(info.used), int(info.free), int(info.total)

    def temperature_c(self, index: int) -> int:
        nvml = self._nvml
        return int(self._call(index, nvml.nvmlDeviceGetTemperature, nvml.NVML_TEMPERATURE_GPU))

    def sm_clock_mhz(self, index: int) -> int:
        nvml = self._nvml
        return int(self._call(index, nvml.nvmlDeviceGetClockInfo, nvml.NVML_CLOCK_SM))

    def fan_speed_pct(self, index: int) -> int:
        return int(self._call(index, self._nvml.nvmlDeviceGetFanSpeed))

    def close(self) -> None:
        try:
            self._nvml.nvmlShutdown()
        except self._nvml.NVMLError:
            pass  # already shut down, or the driver went away: nothing left to release


class ReplayBackend:
    """Serves a recorded NVML trace: the sample with the latest ``t`` <= elapsed clock time.

    Elapsed time counts from the construction of the backend (the sampler's start) and is
    clamped to the first and last samples. Every device index below ``meta.device_count``
    replays the same samples. A field recorded as ``{"error": "..."}`` (or missing) raises
    like the driver would.
    """

    kind = "replay"

    def __init__(self, path: Path, clock_ns: Callable[[], int]) -> None:
        data = json.loads(Path(path).read_text())
        samples = data["samples"]
        if not isinstance(samples, list) or not samples:
            raise ConfigError("the trace has no samples")
        # Integer nanoseconds: comparing floats would let t = 6.8195 s fall before its own sample.
        self._t_ns = [round(float(sample["t"]) * 1e9) for sample in samples]
        if self._t_ns != sorted(self._t_ns):
            raise ConfigError("trace samples are not sorted by t")
        self._samples: list[dict[str, Any]] = samples
        meta = data.get("meta", {})
        self._count = int(meta.get("device_count", 1))
        self._uuid = str(meta.get("uuid", "GPU-replay"))
        self.path = str(path)
        self._clock_ns = clock_ns
        self._t0_ns = clock_ns()

    def current_sample(self) -> dict[str, Any]:
        index = bisect.bisect_right(self._t_ns, self._clock_ns() - self._t0_ns) - 1
        return self._samples[max(index, 0)]

    def _field(self, index: int, key: str) -> Any:
        if not 0 <= index < self._count:
            raise NvmlQueryError(f"the replayed trace has {self._count} device(s), not index {index}")
        value = self.current_sample().get(key)
        if value is None:
            raise NvmlNotSupported(f"{key!r} is not in the replayed trace")
        if isinstance(value, dict) and "error" in value:
            message = str(value["error"])
            if "NotSupported" in message or "Not Supported" in message:
                raise NvmlNotSupported(message)
            raise NvmlQueryError(message)
        return value

    def device_count(self) -> int:
        return self._count

    def uuid(self, index: int) -> str:
        return self._uuid if index == 0 else f"{self._uuid}-{index}"

    def power_mw(self, index: int) -> int:
        return int(self._field(index, "power_mw"))

    def energy_mj(self, index: int) -> int:
        return int(self._field(index, "energy_mj"))

    def utilization(self, index: int) -> tuple[int, int]:
        util = self._field(index, "util")
        return int(util["gpu"]), int(util["memory"])

    def memory(self, index: int) -> tuple[int, int, int]:
        mem = self._field(index, "mem")
        return int(mem["used"]), int(mem["free"]), int(mem["total"])

    def temperature_c(self, index: int) -> int:
        return int(self._field(index, "temp_c"))

    def sm_clock_mhz(self, index: int) -> int:
        return int(self._field(index, "sm_clock_mhz"))

    def fan_speed_pct(self, index: int) -> int:
        return int(self._field(index, "fan"))

    def close(self) -> None:
        pass


def open_backend(clock_ns: Callable[[], int]) -> tuple[NvmlBackend | None, str | None]:
    """Open the replay backend if the env variable names a trace, else the real driver.

    Returns ``(backend, None)`` or ``(None, why)``; never raises, so a machine without a GPU,
    a driver or nvidia-ml-py simply gets no GPU sampling (the caller warns once with ``why``).
    """
    trace = os.environ.get(ENV_NVML_REPLAY)
    if trace:
        try:
            return ReplayBackend(Path(trace), clock_ns), None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return None, f"cannot replay the NVML trace {ENV_NVML_REPLAY}={trace!r}: {exc}"
    try:
        nvml = importlib.import_module("pynvml")
    except ImportError:
        return None, f"nvidia-ml-py (module pynvml) is not installed; to sample GPUs: {GPU_EXTRA_HINT}"
    try:
        return PynvmlBackend(nvml), None
    except Exception as exc:  # noqa: BLE001 - NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return None, f"NVML is not usable on this machine ({type(exc).__name__}: {exc})"


def _visible_gpus(cuda_visible_devices: str, device_count: int, uuids: Sequence[str]) -> list[int]:
    """NVML indices named by CUDA_VISIBLE_DEVICES, read the way CUDA reads it.

    Integer entries are indices (CUDA's order equals NVML's PCI order unless
    ``CUDA_DEVICE_ORDER=FASTEST_FIRST`` reorders a mixed node); ``GPU-...`` entries are UUIDs
    or unique UUID prefixes. Like CUDA, the first invalid entry ends the list, so ``""``,
    ``"-1"`` and Slurm's ``"NoDevFiles"`` mean no GPU. ``MIG-...`` instances share a physical
    GPU whose power cannot be split between them: they are skipped.
    """
    visible: list[int] = []
    for raw in cuda_visible_devices.split(","):
        entry = raw.strip()
        if entry.startswith("MIG-"):
            continue
        if entry.isdigit() and int(entry) < device_count:
            index = int(entry)
        elif entry.startswith("GPU-"):
            matches = [i for i, uuid in enumerate(uuids[:device_count]) if uuid.startswith(entry)]
            if len(matches) != 1:
                break
            index = matches[0]
        else:
            break
        if index not in visible:
            visible.append(index)
    return visible


def owned_gpus(
    gpu_ids: Sequence[int] | None,
    cuda_visible_devices: str | None,
    local_rank: int,
    local_size: int,
    device_count: int,
    *,
    uuids: Sequence[str] = (),
) -> list[int]:
    """The NVML indices this rank measures, so each GPU of a node is measured by one rank.

    Rule (DESIGN section 3): explicit ``gpu_ids`` win (out-of-range ids are dropped); else the
    GPUs in ``CUDA_VISIBLE_DEVICES``, which, when it lists several GPUs and the node has
    several local ranks, are dealt out by position (the j-th visible GPU goes to local rank
    j mod local_size) because all ranks then usually see the same list; else GPU g belongs to
    local rank g mod local_size. A rank may own no GPU. ``uuids`` (index -> UUID) resolves
    UUID entries of CUDA_VISIBLE_DEVICES.

    Limitations of a rule that sees one rank only: a single visible GPU is owned by every rank
    that sees it (right for one GPU per task; for Slurm's ``--gres=gpu:1`` shared by several
    tasks the merge must count each (host, GPU UUID) once); and when each rank sees its own
    *disjoint* list of several GPUs, it is dealt out as if shared. Pass ``gpu_ids`` there.
    """
    if local_size < 1 or not 0 <= local_rank < local_size:
        raise ConfigError(
            f"local_rank={local_rank} and local_size={local_size} are inconsistent: "
            "need local_size >= 1 and 0 <= local_rank < local_size"
        )
    if gpu_ids is not None:
        return sorted({int(g) for g in gpu_ids if 0 <= int(g) < device_count})
    if cuda_visible_devices is not None:
        visible = _visible_gpus(cuda_visible_devices, device_count, uuids)
        if len(visible) > 1 and local_size > 1:
            visible = visible[local_rank::local_size]
        return sorted(visible)
    return [g for g in range(device_count) if g % local_size == local_rank]
