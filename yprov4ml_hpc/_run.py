"""Run: one rank's view of a provenance run, from start_run to end_run.

The hot path is :meth:`Run.log_metric`: a dict lookup, three memoryview stores, a clock
read and an int increment.  Everything slow (validation of new series, coercion of odd
values, flushing a full ring) lives in separate methods that the hot path calls rarely.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from . import _active as _slot
from . import _constants as C
from ._buffer import MetricBuffer
from ._context import Context, context_name
from ._describe import dataset_info, library_versions, model_info
from ._errors import (
    ArtifactNotFoundError,
    ConfigError,
    ConfigTypeError,
    RunStateError,
    StorageError,
    Yprov4mlError,
    Yprov4mlWarning,
)
from ._launcher import LaunchInfo, detect_launch
from ._lifecycle import ProcessHooks
from ._names import check_name
from ._rundir import check_label, create_run_dir
from ._store import RankStore, json_default
from ._values import coerce_metric_value, coerce_step, coerce_timestamp_ns, param_record_value

if TYPE_CHECKING:
    from ._samplers import SamplerSet

__all__ = ["Run"]

_time_ns = time.time_ns
_MIN_RING = 64


_END_STATUSES = (C.STATUS_FINISHED, C.STATUS_FAILED, C.STATUS_KILLED)


def check_end_options(*, finalize_timeout_s: float | None = None, prov_detail: str | None = None) -> None:
    """Refuse bad options of :meth:`Run.end` before anything is closed."""
    if prov_detail is not None and prov_detail not in C.PROV_DETAIL_CHOICES:
        raise ConfigError(f"prov_detail must be one of {C.PROV_DETAIL_CHOICES}, got {prov_detail!r}")
    if finalize_timeout_s is not None and not (
        isinstance(finalize_timeout_s, (int, float))
        and not isinstance(finalize_timeout_s, bool)
        and finalize_timeout_s >= 0
    ):
        raise ConfigError(f"finalize_timeout_s must be a number >= 0, got {finalize_timeout_s!r}")


class Run:
    """A provenance run on this rank.  Create it with :func:`yprov4ml_hpc.start_run`."""

    def __init__(
        self,
        experiment_name: str,
        *,
        provenance_save_dir: str | os.PathLike[str] = C.DEFAULT_SAVE_DIR,
        prov_user_namespace: str | None = None,
        run_id: str | None = None,
        rank: int | None = None,
        comm: Any = None,
        buffer_size: int = C.DEFAULT_BUFFER_SIZE,
        flush_interval_s: float = C.DEFAULT_FLUSH_INTERVAL_S,
        max_buffer_mb: float = 256.0,
        finalize_timeout_s: float = C.DEFAULT_FINALIZE_TIMEOUT_S,
        prov_detail: str = C.DEFAULT_PROV_DETAIL,
        install_signal_handlers: bool = True,
        system_metrics_interval_s: float = C.DEFAULT_SYSTEM_METRICS_INTERVAL_S,
        gpu_ids: Sequence[int] | None = None,
        carbon: bool = True,
        carbon_country_iso_code: str | None = None,
        carbon_region: str | None = None,
        ignored: Mapping[str, object] | None = None,
    ) -> None:
        check_label("experiment_name", experiment_name)
        if isinstance(buffer_size, bool) or not isinstance(buffer_size, int) or buffer_size < 1:
            raise ConfigError(f"buffer_size must be a positive int, got {buffer_size!r}")
        if not isinstance(flush_interval_s, (int, float)) or flush_interval_s < 0:
            raise ConfigError(
                f"flush_interval_s must be a number >= 0 (0 disables the timer), got {flush_interval_s!r}"
            )
        if prov_detail not in C.PROV_DETAIL_CHOICES:
            raise ConfigError(f"prov_detail must be 'auto', 'rank' or 'job', got {prov_detail!r}")
        self.experiment = experiment_name
        self.user_namespace = prov_user_namespace
        self.buffer_size = buffer_size
        self.flush_interval_s = float(flush_interval_s)
        self.finalize_timeout_s = float(finalize_timeout_s)
        self.prov_detail = prov_detail
        # yProv4ML's start_run(metrics_file_type="csv"): CSV series written with the document.
        self.csv_metrics = False
        self.csv_separator = ","
        self._ring_budget = int(max_buffer_mb * (1 << 20))
        self.launch: LaunchInfo = detect_launch(rank, comm)
        self.run_id, self.run_dir = create_run_dir(
            Path(provenance_save_dir), experiment_name, run_id, self.launch
        )
        self.rank = self.launch.rank
        self.world_size = self.launch.world_size
        self.artifacts_dir = self.run_dir / C.ARTIFACTS_DIRNAME / f"rank_{self.rank:06d}"
        self.start_ns = _time_ns()
        self._start_perf = time.perf_counter()
        self._buffers: dict[tuple[object, object], MetricBuffer] = {}
        self._series: dict[tuple[str, str], MetricBuffer] = {}
        self._ring_bytes = 0
        self._other_calls = 0
        self._ended = False
        self.status = C.STATUS_RUNNING
        self._store = RankStore(
            self.run_dir / C.RANKS_DIRNAME / C.RANK_FILE_TEMPLATE.format(rank=self.rank),
            self._root_attrs(ignored or {}),
        )
        try:
            with self._store.locked():
                self._write_or_raise(
                    lambda: self._store.append_record(
                        C.EVENTS_DATASET, {"event": "start", "time_ns": self.start_ns}
                    )
                )
                self._write_or_raise(lambda: self._store.flush(time.perf_counter()))
        except StorageError:
            self._store.abandon()
            raise
        self._hooks = ProcessHooks(self, install_signal_handlers)
        self._sampler = self._start_samplers(
            system_metrics_interval_s, gpu_ids, carbon, carbon_country_iso_code, carbon_region
        )
        self._stop_timer = threading.Event()
        self._timer: threading.Thread | None = None
        if self.flush_interval_s > 0:
            self._timer = threading.Thread(
                target=self._flush_periodically, name="yprov4ml-hpc-flush", daemon=True
            )
            self._timer.start()

    def _root_attrs(self, ignored: Mapping[str, object]) -> dict[str, object]:
        launch = self.launch
        return {
            "run_id": self.run_id,
            "experiment": self.experiment,
            "rank": launch.rank,
            "world_size": launch.world_size,
            "local_rank": launch.local_rank,
            "local_size": launch.local_size,
            "host": launch.host,
            "pid": os.getpid(),
            "launcher": launch.launcher,
            "job_id": launch.job_id or "",
            "gpu_ids": "[]",
            "versions": library_versions(),
            "start_ns": self.start_ns,
            "end_ns": 0,
            "status": C.STATUS_RUNNING,
            "user_namespace": self.user_namespace or "",
            "command": sys.argv,
            "cwd": os.getcwd(),
            "buffer_size": self.buffer_size,
            "flush_interval_s": self.flush_interval_s,
            "finalize_timeout_s": self.finalize_timeout_s,
            "prov_detail": self.prov_detail,
            "ignored_arguments": sorted(ignored),
            "log_calls": 0,
            "series": 0,
            "flushes": 0,
            "flush_time_s": 0.0,
            "bytes_written": 0,
            "points": 0,
        }

    def _start_samplers(
        self,
        interval_s: float,
        gpu_ids: Sequence[int] | None,
        carbon: bool,
        country: str | None,
        region: str | None,
    ) -> SamplerSet:
        """Start the background samplers (psutil, NVML, RAPL, codecarbon) of this rank."""
        from ._samplers import DEFAULT_COUNTRY_ISO_CODE, SamplerSet

        launch = self.launch
        sampler = SamplerSet(
            self.record_sample,
            interval_s=interval_s,
            local_rank=launch.local_rank,
            local_size=max(launch.local_size, launch.local_rank + 1),
            is_node_leader=launch.is_node_leader,
            gpu_ids=gpu_ids,
            carbon=carbon,
            country_iso_code=country or DEFAULT_COUNTRY_ISO_CODE,
            region=region,
        )
        sampler.start()
        try:
            with self._store.locked():
                self._write_or_raise(lambda: self._store.set_attrs(self._sampler_attrs(sampler)))
                self._write_or_raise(lambda: self._store.flush(time.perf_counter()))
        except StorageError:
            sampler.stop()
            self._hooks.uninstall()
            self._store.abandon()
            raise
        return sampler

    @staticmethod
    def _sampler_attrs(sampler: SamplerSet) -> dict[str, object]:
        return {
            "gpu_ids": sampler.gpus,
            "sampler_info": sampler.info,
            "energy_methods": sampler.methods,
            "energy_j": sampler.energy_j(),
            "emissions_kg": sampler.emissions_kg(),
        }

    def log_system_metrics(self, context: object = None, step: int | None = None) -> None:
        """Record one sample of the system/GPU readings now, tied to ``step`` (e.g. per epoch)."""
        self._check_open("log_system_metrics")
        self._sampler.sample_now(None if context is None else context_name(context), step)

    def log_carbon_metrics(self, context: object = None, step: int | None = None) -> None:
        """Record codecarbon's cumulative energy and emissions now (node leader; needs [carbon])."""
        self._check_open("log_carbon_metrics")
        self._sampler.sample_carbon_now(None if context is None else context_name(context), step)

    # --- metrics: the hot path ---------------------------------------------------------------
    def log_metric(
        self,
        key: str,
        value: float,
        context: object = None,
        step: int | None = None,
        source: object = None,
        timestamp: float | int | None = None,
    ) -> None:
        """Record one point of the series (key, context); ``step=None`` auto-increments."""
        try:
            buf = self._buffers.get((key, context))
        except TypeError:  # unhashable key or context: let the slow path explain
            buf = None
        if buf is None:
            buf = self._new_series(key, context)
        head = buf.head
        if head - buf.tail >= buf.capacity:
            self._flush_series(buf)
        i = head % buf.capacity
        if value.__class__ is float:
            buf.value_view[i] = value
        else:  # ints, NumPy scalars, tensors; a complex (even NumPy's) is refused there
            buf.value_view[i] = coerce_metric_value(key, value)
        if step is None:
            step = buf.next_step
        try:
            buf.step_view[i] = step
        except (TypeError, ValueError, OverflowError):
            step = coerce_step(key, step)
            buf.step_view[i] = step
        # The time before the step counter: a refused timestamp must not advance the auto step.
        buf.time_view[i] = _time_ns() if timestamp is None else coerce_timestamp_ns(key, timestamp)
        buf.next_step = step + 1
        buf.head = head + 1  # the steps of _append_point, inlined: keep the two equal

    def log_metrics(
        self, metrics: Mapping[str, float], context: object = None, step: int | None = None
    ) -> None:
        """Log several metrics at once (same context and step)."""
        if not isinstance(metrics, Mapping):
            got = type(metrics).__name__
            raise ConfigTypeError(f"log_metrics takes a mapping of name -> value, got {got}")
        # One clock read for the call: all its points share a timestamp.  A bad entry raises
        # after the entries before it were recorded.
        now = _time_ns()
        for key, value in metrics.items():
            try:
                buf = self._buffers.get((key, context))
            except TypeError:
                buf = None
            if buf is None:
                buf = self._new_series(key, context)
            self._append_point(buf, value, step, now)

    def _append_point(self, buf: MetricBuffer, value: object, step: object, time_ns: int) -> None:
        """The ring producer, written once for the cold paths (log_metrics, the samplers).

        ``log_metric`` inlines these same steps (a call costs ~60 ns on its hot path);
        tests/unit/test_ring_producer.py keeps the two equal in behaviour, errors included.
        """
        head = buf.head
        if head - buf.tail >= buf.capacity:
            self._flush_series(buf)
        i = head % buf.capacity
        if value.__class__ is float:
            buf.value_view[i] = value
        else:  # as in log_metric: a NumPy complex would be cast silently by the ring
            buf.value_view[i] = coerce_metric_value(buf.name, value)
        if step is None:
            step = buf.next_step
        try:
            buf.step_view[i] = step
        except (TypeError, ValueError, OverflowError):
            step = coerce_step(buf.name, step)
            buf.step_view[i] = step
        buf.next_step = step + 1  # type: ignore[operator]  # an int: the ring accepted it
        buf.time_view[i] = time_ns
        buf.head = head + 1

    def _new_series(self, key: object, context: object) -> MetricBuffer:
        """Slow path for the first point of a series: validate, then allocate its ring."""
        self._check_open("log_metric")
        buf = self._series_buffer(check_name("metric name", key), context_name(context))
        self._buffers[(key, context)] = buf
        return buf

    def _series_buffer(self, name: str, ctx: str) -> MetricBuffer:
        """The ring of (name, ctx), allocated on first use within the memory budget."""
        buf = self._series.get((name, ctx))
        if buf is None:
            # A fixed budget for all rings: past it, new series get small rings, never more memory.
            per_point = 24
            remaining = max(self._ring_budget - self._ring_bytes, 0) // per_point
            capacity = max(min(self.buffer_size, remaining), min(_MIN_RING, self.buffer_size))
            buf = MetricBuffer(name, ctx, capacity)
            self._ring_bytes += buf.nbytes()
            self._series[(name, ctx)] = buf
        return buf

    def record_sample(self, name: str, value: float, context: str, step: int | None, time_ns: int) -> None:
        """Write path of the background samplers (one producer thread per series)."""
        if not self._store.is_open:
            return
        # Samplers pass valid names and string contexts; their final reads arrive during close().
        buf = self._series.get((name, context)) or self._series_buffer(name, context)
        self._append_point(buf, value, step, time_ns)

    # --- flushing ----------------------------------------------------------------------------
    def log_calls(self) -> int:
        """Every API call that recorded something: metric points plus params, artifacts, ..."""
        return sum(buf.head for buf in list(self._series.values())) + self._other_calls

    def _flush_series(self, buf: MetricBuffer) -> None:
        started = time.perf_counter()
        with self._store.locked():
            if not self._store.is_open:
                raise RunStateError("the run was closed (end_run or SIGTERM); start a new run")
            self._write_or_raise(lambda: self._store.append_series(buf))
            self._finish_flush(started, counters_always=False)

    def flush(self) -> None:
        """Write every buffered point to the rank file and flush it to the OS."""
        started = time.perf_counter()
        with self._store.locked():
            if not self._store.is_open:
                return
            for buf in list(self._series.values()):
                if buf.head != buf.tail:
                    self._write_or_raise(lambda b=buf: self._store.append_series(b))
            self._finish_flush(started)

    def _finish_flush(self, started: float, counters_always: bool = True) -> None:
        counters = None
        if counters_always or self._store.counters_due():
            counters = {"log_calls": self.log_calls(), "series": len(self._series)}
        self._write_or_raise(lambda: self._store.flush(started, counters))
        self._store.check_identity()  # one stat per flush: a deleted rank file is reported

    def _write_or_raise(self, write: Any) -> Any:
        try:
            return write()
        except (OSError, RuntimeError, ValueError) as exc:
            raise StorageError(
                f"writing rank file {self._store.path} failed: {exc}; data flushed before this "
                "point is safe (check free space and quotas)"
            ) from exc

    def _flush_periodically(self) -> None:
        """Timer thread: flush data older than flush_interval_s even if the loop went quiet."""
        while not self._stop_timer.wait(self.flush_interval_s):
            try:
                if any(buf.head != buf.tail for buf in list(self._series.values())):
                    self.flush()
            except Exception as exc:  # noqa: BLE001 - a timer must never kill the process
                self._hooks.warn_once("flush", f"background flush failed: {exc}")

    def _record(self, dataset: str, record: dict[str, object]) -> None:
        """Append a param/artifact/event record and flush, so it survives a crash."""
        self._check_open("logging")
        try:  # refused here, not at the flush that would then lose the batch and blame the disk
            json.dumps(record, default=json_default, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            label = record.get("name", record.get("event"))
            raise ConfigError(
                f"{dataset} record {label!r}: a string in it contains {exc.object[exc.start : exc.end]!r}, "
                "a lone surrogate that UTF-8 (and so the rank file) cannot store; pass valid Unicode text"
            ) from None
        started = time.perf_counter()
        with self._store.locked():
            self._write_or_raise(lambda: self._store.append_record(dataset, record))
            self._other_calls += 1
            self._finish_flush(started)

    # --- params, artifacts, models, datasets ------------------------------------------------------
    def log_param(
        self,
        key: str,
        value: object,
        context: object = None,
        *,
        source: str | None = None,
        is_input: bool = False,
    ) -> None:
        """Record a parameter; the value keeps its type (int, float, bool, str, None, list, dict)."""
        name = check_name("param name", key)
        stored, type_name = param_record_value(value)
        record: dict[str, object] = {
            "name": name,
            "value": stored,
            "type": type_name,
            "context": context_name(context),
            "time_ns": _time_ns(),
        }
        if source is not None:
            record["source"] = str(getattr(source, "value", source))
        if is_input:
            record["role"] = "input"
        try:
            json.dumps(record, allow_nan=True)
        except (TypeError, ValueError) as exc:
            why = f"value of type {type_name} cannot be stored: {exc}"
            raise ConfigTypeError(f"param {name!r}: {why}") from exc
        self._record(C.PARAMS_DATASET, record)

    def log_params(self, params: Mapping[str, object], context: object = None) -> None:
        if not isinstance(params, Mapping):
            raise ConfigTypeError(f"log_params takes a mapping of name -> value, got {type(params).__name__}")
        for key, value in params.items():
            self.log_param(key, value, context)

    def log_artifact(
        self,
        artifact_name: str | os.PathLike[str],
        artifact_path: str | os.PathLike[str] | None = None,
        context: object = None,
        step: int | None = None,
        log_copy_in_prov_directory: bool = True,
        is_model: bool = False,
        is_input: bool = False,
        kind: str = "artifact",
        *,
        subdirectory: str | None = None,
        extra: Mapping[str, object] | None = None,
    ) -> dict[str, object]:
        """Record a file or folder; by default a copy is kept under ``artifacts/rank_NNNNNN/``.

        The copy keeps the file's extension when ``artifact_name`` has none (``"weights"``
        for ``model.pt`` is stored as ``weights.pt``), under ``subdirectory`` if given.
        """
        if isinstance(artifact_path, Context) or artifact_path is None:
            # yProv4ML 2.x: log_artifact(path, context, ...): the name is the file name.
            context = artifact_path if artifact_path is not None else context
            artifact_path, artifact_name = artifact_name, Path(os.fspath(artifact_name)).name
        name = check_name("artifact name", os.fspath(artifact_name))
        source = Path(os.fspath(artifact_path))
        if not source.exists():
            raise ArtifactNotFoundError(
                f"artifact {name!r}: path {str(source)!r} does not exist; log it after it is written"
            )
        self._check_open("log_artifact")
        from ._artifacts import copy_artifact, file_digest  # shutil/hashlib: only when used

        if log_copy_in_prov_directory:
            copy_name = name
            if source.is_file() and source.suffix and not Path(name).suffix:
                copy_name = name + source.suffix
            if subdirectory:
                copy_name = f"{subdirectory}/{copy_name}"
            stored = copy_artifact(source, self.artifacts_dir, copy_name)
            location = stored.relative_to(self.run_dir).as_posix()
        else:
            stored, location = source, str(source.resolve())
        size, sha256 = file_digest(stored)
        record: dict[str, object] = {
            "name": name,
            "path": location,
            "copied": bool(log_copy_in_prov_directory),
            "source": str(source.resolve()),
            "size": size,
            "sha256": sha256,
            "role": "input" if is_input else "output",
            "kind": "model" if is_model else kind,
            "context": context_name(context),
            "step": step,
            "time_ns": _time_ns(),
            **(extra or {}),
        }
        self._record(C.ARTIFACTS_DATASET, record)
        return record

    def log_model(
        self,
        model_name: str,
        model: object,
        context: object = None,
        step: int | None = None,
        is_input: bool = False,
        log_model_info: bool = True,
    ) -> dict[str, object]:
        """Record a model: a path is logged as a model artifact; a torch module is saved first."""
        check_name("model name", model_name)
        if isinstance(model, (str, os.PathLike)):
            return self.log_artifact(model_name, model, context, step, is_model=True, is_input=is_input)
        info = model_info(model) if log_model_info else {"type": type(model).__name__}
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(model, torch.nn.Module):
            self._check_open("log_model")
            target = self.artifacts_dir / "models" / f"{model_name}.pt"
            from ._artifacts import ensure_rank_dir

            ensure_rank_dir(self.artifacts_dir)  # never re-creates a deleted run directory
            try:
                target.parent.mkdir(exist_ok=True)
                torch.save(model.state_dict(), target)
            except OSError as exc:
                raise StorageError(f"cannot save model {model_name!r} to {target}: {exc}") from exc
            record = self.log_artifact(
                f"models/{model_name}.pt",
                target,
                context,
                step,
                log_copy_in_prov_directory=False,
                is_model=True,
                is_input=is_input,
            )
            self._record(C.EVENTS_DATASET, {"event": "model_info", "name": model_name, **info})
            return record
        record = {
            "name": model_name,
            "path": None,
            "size": None,
            "sha256": None,
            "role": "input" if is_input else "output",
            "kind": "model",
            "context": context_name(context),
            "step": step,
            "time_ns": _time_ns(),
            **info,
        }
        self._record(C.ARTIFACTS_DATASET, record)
        return record

    def log_dataset(
        self, label: str, dataset: object, context: object = None, *, info: bool = True
    ) -> dict[str, object]:
        """Record a dataset or data loader: its type, and (``info``) length and loader settings."""
        name = check_name("dataset label", label)
        record: dict[str, object] = {
            "name": name,
            "path": None,
            "size": None,
            "sha256": None,
            "role": "input",
            "kind": "dataset",
            "context": context_name(context),
            "time_ns": _time_ns(),
            "type": type(dataset).__name__,
        }
        if info:
            record.update(dataset_info(dataset))
        self._record(C.ARTIFACTS_DATASET, record)
        return record

    def log_source_code(self, path: str | os.PathLike[str] | None = None) -> dict[str, object]:
        """Record which code ran: git commit (and dirty flag), else file hashes (never site-packages)."""
        if path is None:
            main = sys.argv[0] if sys.argv and sys.argv[0] not in ("", "-c", "-m") else os.getcwd()
            path = Path(main).resolve().parent if Path(main).is_file() else Path(main)
        from ._sourcecode import describe_source

        info = describe_source(Path(os.fspath(path)))
        self.log_param("source_code", info)
        return info

    def log_event(self, event: str, **fields: object) -> None:
        """Record a named event (epoch boundary, checkpoint, ...) with a timestamp."""
        self._record(C.EVENTS_DATASET, {"event": check_name("event", event), "time_ns": _time_ns(), **fields})

    # --- lifecycle ---------------------------------------------------------------------------
    def _check_open(self, what: str) -> None:
        if self._ended:
            raise RunStateError(
                f"{what} after the run ended (status {self.status!r}); call start_run() first"
            )

    @property
    def rank_file(self) -> Path:
        """This rank's file (``ranks/rank_NNNNNN.h5``)."""
        return self._store.path

    @property
    def ended(self) -> bool:
        return self._ended

    def end(
        self,
        status: str = C.STATUS_FINISHED,
        reason: str = "end_run",
        *,
        finalize: bool | None = None,
        create_graph: bool = False,
        create_svg: bool = False,
        crate_ro_crate: bool = False,
        create_card: bool = False,
        finalize_timeout_s: float | None = None,
        prov_detail: str | None = None,
    ) -> Path:
        """End this run: close the rank file as ``status``, then write the job's document.

        What ``end_run()``, a ``with`` block, the process hooks and the Lightning logger call.
        ``finalize`` (default: :meth:`finalizes_when`) writes the PROV document and
        summary.json; a finished run finalizes collectively on every rank, a failed or
        interrupted one on a single-rank job or on rank 0 (which waits at most
        ``finalize_timeout_s`` for the others; they, having failed, do not wait for it).
        The options are ``end_run``'s; with the document, rank 0 also writes what
        yProv4ML's options promise (CSV series if start_run asked for them, ``card.json``,
        an RO-Crate).  Ending an ended run does nothing.  Returns the run directory.
        """
        check_end_options(finalize_timeout_s=finalize_timeout_s, prov_detail=prov_detail)
        if status not in _END_STATUSES:
            raise ConfigError(f"status must be one of {_END_STATUSES}, got {status!r}")
        if self._ended:  # e.g. end_run() inside a `with` block: close and finalize only once
            _slot.release(self)
            return self.run_dir
        if prov_detail is not None:
            self.prov_detail = prov_detail  # close() writes it into the rank file
        from ._compat._enums import FoldOperation
        from ._compat._state import record_final_metrics

        try:
            record_final_metrics(self, FoldOperation.name_of)  # params, so before the file closes
        except Yprov4mlError as exc:  # a final value that cannot be a param must not lose the run
            warnings.warn(f"register_final_metric: {exc}", Yprov4mlWarning, stacklevel=2)
        try:
            self.close(status, reason)
        finally:
            _slot.release(self)
        if finalize if finalize is not None else self.finalizes_when(status):
            from ._finalize import finalize as finalize_job

            finalize_job(
                self,
                timeout_s=finalize_timeout_s,
                prov_detail=prov_detail,
                create_graph=create_graph,
                create_svg=create_svg,
            )
            from ._compat._outputs import write_end_outputs

            write_end_outputs(
                self,
                csv=self.csv_metrics,
                csv_separator=self.csv_separator,
                ro_crate=crate_ro_crate,
                card=create_card,
            )
        return self.run_dir

    def finalizes_when(self, status: str) -> bool:
        """Whether ending as ``status`` writes the document by default (see :meth:`end`).

        A failed rank other than 0 must not wait for the others (they may be stuck in a
        collective it left); rank 0 waits with the finalize timeout, so a job whose rank 0
        failed still gets its document with every other rank's status as its file says.
        """
        return status == C.STATUS_FINISHED or self.launch.world_size <= 1 or self.launch.rank == 0

    @property
    def writing_on_this_thread(self) -> bool:
        """Whether this thread is inside a write of the rank file (a signal handler's question)."""
        return self._store.held_by_current_thread() or (self._ended and self._store.is_open)

    def after_write(self, action: Callable[[], None]) -> None:
        """Run ``action`` once the write in progress on this thread releases the file."""
        self._store.deferred = action

    def close(self, status: str, reason: str) -> None:
        """Stop the timer, flush everything, mark the file with ``status`` and close it.

        Safe to call twice and from the SIGTERM handler; later calls do nothing.
        """
        if self._ended:
            return
        self._ended = True
        self._buffers = {}  # a later log_metric takes the slow path, which raises RunStateError
        self.status = status
        self._stop_timer.set()
        if self._timer is not None and self._timer is not threading.current_thread():
            self._timer.join(timeout=max(self.flush_interval_s, 1.0) + 5.0)
        self._sampler.stop()  # its final energy reads land in the rings before the last drain
        end_ns = _time_ns()
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            with self._store.locked():
                try:
                    self._write_final(status, reason, end_ns, started)
                except (OSError, RuntimeError, ValueError) as exc:
                    error = exc
                try:
                    self._store.close()
                except (OSError, RuntimeError, ValueError) as exc:
                    error = error or exc
        finally:
            self._hooks.uninstall()
        if error is not None:
            if isinstance(error, StorageError):
                raise error
            raise StorageError(
                f"closing rank file {self._store.path} failed: {error}; data flushed before this "
                "point is safe, the run is ended (check free space and quotas)"
            ) from error

    def _write_final(self, status: str, reason: str, end_ns: int, started: float) -> None:
        """The last writes of close(): remaining points, the end event and the final attributes."""
        if not self._store.is_open:
            return
        for buf in list(self._series.values()):
            if buf.head != buf.tail:
                self._write_or_raise(lambda b=buf: self._store.append_series(b))
        end_event = {"event": "end", "reason": reason, "status": status, "time_ns": end_ns}
        self._write_or_raise(lambda: self._store.append_record(C.EVENTS_DATASET, end_event))
        self._write_or_raise(lambda: self._store.set_attrs(self._sampler_attrs(self._sampler)))
        final = {
            "status": status,
            "prov_detail": self.prov_detail,
            "end_ns": end_ns,
            "wall_time_s": (end_ns - self.start_ns) / 1e9,
        }
        self._write_or_raise(lambda: self._store.set_attrs(final))
        self._finish_flush(started)

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        status = C.STATUS_FINISHED if exc_type is None else C.STATUS_FAILED
        if exc_type is KeyboardInterrupt:
            status = C.STATUS_KILLED
        self.end(status, f"context manager exit ({exc_type.__name__ if exc_type else 'ok'})")

    def __repr__(self) -> str:
        return (
            f"Run(experiment={self.experiment!r}, run_id={self.run_id!r}, rank={self.rank}, "
            f"world_size={self.world_size}, status={self.status!r}, run_dir='{self.run_dir}')"
        )
