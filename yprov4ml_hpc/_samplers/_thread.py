"""SamplerSet: the samplers of one rank, their one background thread, and their recording.

Cheap readings (psutil, NVML power/utilisation/...) are taken every ``interval_s`` on the
thread, or on demand by :meth:`SamplerSet.sample_now`. Energy counters (NVML ~4 ms a read,
RAPL) are read at start, at most once a second on the thread, and at stop; codecarbon is
started on the thread. Every recording goes through one reentrant lock, because ``record``
is only thread-safe across *distinct* series and the thread and the caller share series.
Nothing here raises into the training script: a sampler that cannot run warns once
(:class:`SamplerUnavailableWarning`) and is skipped.
"""

from __future__ import annotations

import math
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from yprov4ml_hpc._constants import DEFAULT_SYSTEM_METRICS_INTERVAL_S
from yprov4ml_hpc._errors import ConfigError, SamplerUnavailableWarning
from yprov4ml_hpc._samplers import _carbon
from yprov4ml_hpc._samplers._gpu import GpuSampler, open_gpu_sampler
from yprov4ml_hpc._samplers._process import NodeSampler, ProcessSampler
from yprov4ml_hpc._samplers._rapl import RaplSampler

from .. import _constants as C

#: record(name, value, context, step, time_ns); step None = next step of that series.
Record = Callable[[str, float, str, int | None, int], None]

CONTEXT_GPU = C.GPU_CONTEXT
CONTEXT_ENERGY = C.ENERGY_CONTEXT
CONTEXT_SYSTEM = C.SYSTEM_CONTEXT
THREAD_NAME = "yprov4ml-sampler"

_ENERGY_MIN_PERIOD_NS = 1_000_000_000  # NVML energy counter: <= 1 Hz (a read costs ~4 ms)
_JOIN_STARTING_S = 0.05
_JOIN_TIMEOUT_S = 3.0  # > codecarbon's start (1.2-2 s), < Slurm's SIGTERM-to-SIGKILL grace


class SamplerSet:
    """Background samplers of one rank. See the package docstring for the series produced."""

    def __init__(
        self,
        record: Record,
        *,
        interval_s: float = DEFAULT_SYSTEM_METRICS_INTERVAL_S,
        local_rank: int = 0,
        local_size: int = 1,
        is_node_leader: bool = True,
        gpu_ids: Sequence[int] | None = None,
        carbon: bool = True,
        country_iso_code: str = _carbon.DEFAULT_COUNTRY_ISO_CODE,
        region: str | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        if not math.isfinite(interval_s) or interval_s < 0:
            raise ConfigError(f"interval_s={interval_s!r}: need a finite number >= 0 (0 = off)")
        if local_size < 1 or not 0 <= local_rank < local_size:
            raise ConfigError(
                f"local_rank={local_rank}, local_size={local_size}: need 0 <= local_rank < local_size"
            )
        self._record = record
        self._interval_s = float(interval_s)
        self._local_rank, self._local_size = local_rank, local_size
        self._leader = is_node_leader
        self._gpu_ids = None if gpu_ids is None else list(gpu_ids)
        self._carbon_asked = carbon
        self._want_carbon = carbon and is_node_leader
        self._country, self._region = country_iso_code.upper(), region
        self._clock_ns = clock_ns
        self._lock = threading.RLock()  # reentrant: stop() may run from a signal handler
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._opened = self._stopped = self._busy = self._finalizing = False
        self._warned: set[str] = set()
        self._process: ProcessSampler | None = None
        self._node: NodeSampler | None = None
        self._gpu: GpuSampler | None = None
        self._rapl: RaplSampler | None = None
        self._carbon: _carbon.CarbonSampler | None = None
        self._last_energy_ns: int | None = None
        self._carbon_starting = False  # the thread is inside codecarbon's slow start
        self._energy: dict[str, float] = {}
        self._emissions: dict[str, float] = {}
        self._info: dict[str, Any] = {
            "interval_s": self._interval_s,
            "node_leader": is_node_leader,
            "gpu_backend": None,
            "nvml_replay_trace": None,
            "gpu_uuids": {},
            "carbon": None,  # on / disabled / not_installed / other_rank (see _carbon.CARBON_*)
            "carbon_country_iso_code": None,
            "carbon_region": None,
        }

    # ---------------------------------------------------------------- public interface
    def start(self) -> None:
        """Open the samplers (a few ms) and start the thread; codecarbon starts on the thread."""
        with self._lock:
            if self._thread is not None or self._stopped:
                return
            self._open()
            if self._interval_s > 0:  # one sample at start_run, whatever the interval
                self._record_cheap(None, None, self._clock_ns())
            if self._interval_s <= 0 and self._carbon is None:
                self._read_energy()  # no thread: take the energy baseline here
                return
            self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
            self._thread.start()

    def sample_now(self, context: str | None = None, step: int | None = None) -> None:
        """One synchronous round of the cheap readings (``log_system_metrics``)."""
        with self._lock:
            if self._stopped:
                return
            self._open()
            self._busy = True  # tells a stop() from a signal handler that it interrupted us
            try:
                self._record_cheap(context, step, self._clock_ns())
                if self._last_energy_ns is None:  # only the very first energy read may happen here
                    self._read_energy()
            finally:
                self._busy = False

    def sample_carbon_now(self, context: str | None = None, step: int | None = None) -> None:
        """Record codecarbon's cumulative energy and emissions now (``log_carbon_metrics``).

        Node leader only (codecarbon measures the node); a no-op elsewhere, when codecarbon is
        absent (one warning) or while its tracker is still starting (its first 1-2 s).
        """
        if not self._want_carbon:
            return
        if not _carbon.codecarbon_installed():
            self._warn_once("codecarbon", _carbon.NOT_INSTALLED)
            return
        carbon = self._carbon
        readings = None if carbon is None else self._guarded(carbon.read)
        if readings:
            with self._lock:
                self._record_carbon(readings, context, step, self._clock_ns())

    def stop(self) -> None:
        """Stop the thread, take the final energy reads, stop codecarbon, release NVML.

        Idempotent, never raises, bounded in time; safe from ``atexit`` and signal handlers.
        """
        with self._lock:
            if self._stopped:
                return
            self._stopped = True  # from here on only the final records below get through
            interrupted_a_sample = self._busy
        self._stop_event.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            # A thread still inside codecarbon's slow start (1-3 s) is not waited for: the
            # tracker stops itself when its start returns, so a short run ends promptly.
            thread.join(_JOIN_STARTING_S if self._carbon_starting else _JOIN_TIMEOUT_S)
        with self._lock:
            self._finalizing = True
            try:
                # ... and one at the end, whatever the interval (unless stop() interrupted a
                # sample on this thread: that sample is the last one, its readers are mid-call)
                if self._opened and self._interval_s > 0 and not interrupted_a_sample:
                    self._record_cheap(None, None, self._clock_ns())
                if self._opened:
                    self._read_energy()
                final = None if self._carbon is None else self._guarded(self._carbon.stop)
                if final:
                    self._record_carbon(final, None, None, self._clock_ns())
            finally:
                self._finalizing = False
            # A sample interrupted by the signal handler calling us resumes after we return:
            # leave NVML to the process exit rather than pull it from under that sample.
            if self._gpu is not None and not interrupted_a_sample:
                self._guarded(self._gpu.backend.close)

    @property
    def methods(self) -> dict[str, str]:
        """Series name -> how its figure was obtained (energy and emissions series only)."""
        with self._lock:
            methods: dict[str, str] = {}
            if self._gpu is not None:
                methods.update(self._gpu.methods)
            if self._rapl is not None:
                methods.update(self._rapl.methods)
            if self._carbon is not None and (self._carbon.running or self._emissions):
                methods[_carbon.ENERGY_SERIES] = _carbon.METHOD_CODECARBON
                methods[_carbon.EMISSIONS_SERIES] = _carbon.METHOD_CODECARBON
            return methods

    def energy_j(self) -> dict[str, float]:
        """Latest cumulative energy (J) since start, per energy series."""
        with self._lock:
            return dict(self._energy)

    def emissions_kg(self) -> dict[str, float]:
        """Latest cumulative emissions (kg CO2e) since start: ``{"codecarbon/emissions_kg": x}`` or {}."""
        with self._lock:
            return dict(self._emissions)

    @property
    def gpus(self) -> list[int]:
        """NVML indices this rank measures (known after :meth:`start`)."""
        return [] if self._gpu is None else list(self._gpu.gpus)

    @property
    def info(self) -> dict[str, Any]:
        """JSON-ready facts for the provenance: backend, trace, GPU UUIDs, carbon location."""
        with self._lock:
            return dict(self._info)

    # ---------------------------------------------------------------- internals
    def _open(self) -> None:
        """Create the samplers once (caller holds the lock); unavailable ones warn once."""
        if self._opened:
            return
        self._opened = True
        self._process = self._guarded(ProcessSampler)
        if self._leader:
            self._node = self._guarded(NodeSampler)
            self._rapl, why = RaplSampler.open()
            if why:
                self._warn_once("rapl", why)
        self._gpu, facts, why = self._guarded(
            open_gpu_sampler,
            self._clock_ns,
            self._gpu_ids,
            self._local_rank,
            self._local_size,
            lambda message: self._warn_once(message, message),
        ) or (None, {}, None)
        self._info.update(facts)
        if why and self._leader:  # a node-level fact: one warning per node, not per rank
            self._warn_once("nvml", f"{why}; GPU metrics and energy are not sampled")
        self._info["carbon"] = self._carbon_state()
        if self._want_carbon:
            if _carbon.codecarbon_installed():
                # codecarbon measures the machine: all its GPUs, not the leader's visible subset.
                real_nvml = self._info["gpu_backend"] == "pynvml"
                node_gpus = list(range(len(self._info["gpu_uuids"]))) if real_nvml else []
                measure_s = max(self._interval_s, 1.0) if self._interval_s > 0 else 15.0
                self._carbon = _carbon.CarbonSampler(self._country, self._region, measure_s, node_gpus)
                self._info.update(carbon_country_iso_code=self._country, carbon_region=self._region)
            else:
                self._warn_once("codecarbon", _carbon.NOT_INSTALLED)

    def _carbon_state(self) -> str:
        """What the reports say about codecarbon on this rank (CARBON_* in ``_carbon``)."""
        if not self._want_carbon:
            return _carbon.CARBON_OTHER_RANK if self._carbon_asked else _carbon.CARBON_DISABLED
        return _carbon.CARBON_ON if _carbon.codecarbon_installed() else _carbon.CARBON_NOT_INSTALLED

    def _run(self) -> None:
        """The thread: energy baseline, codecarbon start, then one tick per interval."""
        with self._lock:
            if self._last_energy_ns is None and not self._stopped:
                self._read_energy()
        if self._carbon is not None:
            # codecarbon's start takes 1-2 s (more under load): on a thread of its own, so the
            # psutil/NVML ticks below never wait for it.
            self._carbon_starting = True
            threading.Thread(target=self._start_carbon, name=f"{THREAD_NAME}-carbon", daemon=True).start()
        interval = self._interval_s
        if interval <= 0:
            return
        deadline = time.monotonic() + interval
        while not self._stop_event.wait(max(deadline - time.monotonic(), 0.0)):
            self._guarded(self._tick)
            deadline = max(deadline + interval, time.monotonic())  # skip ticks after a stall

    def _start_carbon(self) -> None:
        assert self._carbon is not None
        try:
            why = self._guarded(self._carbon.start)
        finally:
            self._carbon_starting = False
        if why:
            with self._lock:
                self._info["carbon"] = f"{_carbon.CARBON_FAILED}: {why}"
            self._warn_once("codecarbon", why)

    def _tick(self) -> None:
        """One periodic sample: cheap readings, energy at <= 1 Hz, codecarbon's totals."""
        with self._lock:
            if self._stopped:
                return
            now = self._clock_ns()
            self._record_cheap(None, None, now)
            if self._last_energy_ns is None or now - self._last_energy_ns >= _ENERGY_MIN_PERIOD_NS:
                self._read_energy()
        carbon = None if self._carbon is None else self._carbon.read()
        if carbon:
            with self._lock:
                self._record_carbon(carbon, None, None, self._clock_ns())

    def _emit(self, readings: dict[str, float], context: str, step: int | None, now: int) -> None:
        for name, value in readings.items():
            if self._stopped and not self._finalizing:
                return  # stop() began (maybe in a signal handler): the Run may be closing
            self._guarded(self._record, name, value, context, step, now)

    def _record_cheap(self, context: str | None, step: int | None, now: int) -> None:
        """Cheap readings of every sampler (lock held); one failing sampler spares the others."""
        for sampler, default_context in ((self._process, CONTEXT_SYSTEM), (self._node, CONTEXT_SYSTEM)):
            if sampler is not None:
                self._emit(self._guarded(sampler.read) or {}, context or default_context, step, now)
        if self._gpu is not None:
            self._emit(self._guarded(self._gpu.read, now) or {}, context or CONTEXT_GPU, step, now)

    def _read_energy(self) -> None:
        """Read every energy counter now and record the cumulative figures (lock held)."""
        now = self._clock_ns()
        readings: dict[str, float] = {}
        if self._gpu is not None:
            readings.update(self._guarded(self._gpu.read_energy, now) or {})
        if self._rapl is not None:
            readings.update(self._guarded(self._rapl.read_energy) or {})
        self._last_energy_ns = now
        self._energy.update(readings)
        self._emit(readings, CONTEXT_ENERGY, None, now)

    def _record_carbon(
        self, readings: dict[str, float], context: str | None, step: int | None, now: int
    ) -> None:
        for name, value in readings.items():
            (self._emissions if name == _carbon.EMISSIONS_SERIES else self._energy)[name] = value
        self._emit(readings, context or CONTEXT_ENERGY, step, now)

    def _guarded(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Call ``fn``; on any error warn once (per function) and return None: never raise."""
        try:
            return fn(*args)
        except Exception as exc:  # noqa: BLE001 - a sampler must never break the training script
            name = getattr(fn, "__qualname__", repr(fn))
            self._warn_once(f"error:{name}", f"sampler step {name} failed ({type(exc).__name__}: {exc})")
            return None

    def _warn_once(self, key: str, message: str) -> None:
        with self._lock:
            if key in self._warned:
                return
            self._warned.add(key)
        warnings.warn(message, SamplerUnavailableWarning, stacklevel=3)
