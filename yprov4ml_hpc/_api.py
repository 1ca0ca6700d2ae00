"""The module-level API, drop-in for yProv4ML: ``import yprov4ml_hpc as prov4ml``.

One run is active per process; every ``log_*`` function forwards to it.  Arguments that
yProv4ML has and we do not need are accepted and ignored (listed in ``IGNORED_ARGUMENTS``),
so existing scripts run unchanged.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import _constants as C
from ._errors import ConfigError, RunStateError, Yprov4mlWarning
from ._run import Run

__all__ = [
    "IGNORED_ARGUMENTS",
    "active_run",
    "end_run",
    "get_run_dir",
    "log_artifact",
    "log_carbon_metrics",
    "log_current_execution_time",
    "log_dataset",
    "log_execution_command",
    "log_execution_end_time",
    "log_execution_start_time",
    "log_metric",
    "log_metrics",
    "log_model",
    "log_param",
    "log_params",
    "log_source_code",
    "log_system_metrics",
    "start_run",
]

# yProv4ML 2.x/3.x arguments that have no meaning here: accepted, recorded, otherwise ignored.
IGNORED_ARGUMENTS = frozenset(
    {
        "save_after_n_logs",  # our rings flush when full or by timer
        "collect_all_processes",  # every rank is always collected
        "metrics_file_type",
        "csv_separator",
        "use_compressor",
        "unify_experiments",
        "create_graph",
        "create_svg",
        "create_provenance_collection",
        "log_on_rank",
        "create_dataset_entities",
        "create_model_entities",
    }
)

_active: Run | None = None
_active_lock = threading.Lock()


def start_run(
    experiment_name: str,
    prov_user_namespace: str | None = None,
    provenance_save_dir: str | os.PathLike[str] | None = None,
    save_after_n_logs: int | None = None,
    collect_all_processes: bool | None = None,
    rank: int | None = None,
    run_id: str | None = None,
    comm: Any = None,
    buffer_size: int = C.DEFAULT_BUFFER_SIZE,
    flush_interval_s: float = C.DEFAULT_FLUSH_INTERVAL_S,
    finalize_timeout_s: float = C.DEFAULT_FINALIZE_TIMEOUT_S,
    prov_detail: str = C.DEFAULT_PROV_DETAIL,
    max_buffer_mb: float = 256.0,
    install_signal_handlers: bool = True,
    system_metrics_interval_s: float | None = None,
    gpu_ids: Sequence[int] | None = None,
    disable_codecarbon: bool | None = None,
    carbon_country_iso_code: str | None = None,
    carbon_region: str | None = None,
    **ignored: Any,
) -> Run:
    """Start the provenance run of this rank and make it the active one.

    ``experiment_name`` and ``run_id`` name the run directory
    ``<provenance_save_dir>/<experiment_name>_<run_id>/``; every rank of an MPI, Slurm or
    torchrun job agrees on it.  ``buffer_size`` points per series are held in memory and
    written when full or after ``flush_interval_s`` seconds (0: only when full and at the
    end).  ``save_after_n_logs`` and ``collect_all_processes`` are accepted and ignored.

    Background samplers record CPU/memory/disk/network (psutil), the GPUs this rank owns
    (NVML: ``gpu_ids``, else ``CUDA_VISIBLE_DEVICES``, else GPU g -> local rank g mod local
    ranks) and energy every ``system_metrics_interval_s`` seconds (default 10, env
    ``YPROV4ML_HPC_SYSTEM_METRICS_INTERVAL_S``; 0 = only at start and end).  codecarbon (the
    ``carbon`` extra) runs once per node unless ``disable_codecarbon=True`` or env
    ``YPROV4ML_HPC_CARBON=0``; ``carbon_country_iso_code`` sets its grid (default USA).
    """
    global _active
    unknown = sorted(set(ignored) - IGNORED_ARGUMENTS)
    if unknown:
        warnings.warn(
            f"start_run ignores unknown arguments {unknown}; check their spelling",
            Yprov4mlWarning,
            stacklevel=2,
        )
    for name, value in (
        ("save_after_n_logs", save_after_n_logs),
        ("collect_all_processes", collect_all_processes),
    ):
        if value is not None:
            ignored[name] = value
    save_dir = provenance_save_dir or os.environ.get(C.ENV_SAVE_DIR) or C.DEFAULT_SAVE_DIR
    with _active_lock:
        if _active is not None:
            raise RunStateError(
                f"a run is already active ({_active.experiment}_{_active.run_id}); "
                "call end_run() before start_run()"
            )
        _active = Run(
            experiment_name,
            provenance_save_dir=save_dir,
            prov_user_namespace=prov_user_namespace,
            run_id=run_id,
            rank=rank,
            comm=comm,
            buffer_size=buffer_size,
            flush_interval_s=flush_interval_s,
            max_buffer_mb=max_buffer_mb,
            finalize_timeout_s=finalize_timeout_s,
            prov_detail=prov_detail,
            install_signal_handlers=install_signal_handlers,
            system_metrics_interval_s=_interval_from(system_metrics_interval_s),
            gpu_ids=gpu_ids,
            carbon=not disable_codecarbon and os.environ.get(C.ENV_CARBON, "1") != "0",
            carbon_country_iso_code=carbon_country_iso_code,
            carbon_region=carbon_region,
            ignored=ignored,
        )
        return _active


def _interval_from(value: float | None) -> float:
    if value is not None:
        return value
    raw = os.environ.get(C.ENV_SYSTEM_METRICS_INTERVAL)
    if raw is None:
        return C.DEFAULT_SYSTEM_METRICS_INTERVAL_S
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(
            f"{C.ENV_SYSTEM_METRICS_INTERVAL}={raw!r} is not a number of seconds; unset or fix it"
        ) from None


def _end_active(run: Run, status: str, reason: str, finalize: bool = False, fold: bool = True) -> Path:
    """Close ``run`` and clear it as the active run (shared by end_run, signals, atexit).

    ``finalize=True`` (end_run, and a ``with start_run(...)`` block left without an exception)
    then writes the job's document and summary, collectively over the ranks.  Signals and
    atexit never finalize: they must not wait for other ranks, and MPI may be gone at exit.
    """
    global _active
    already_ended = run.ended  # e.g. end_run() inside a `with` block: finalize only once
    try:
        run.close(status, reason, fold=fold)
    finally:
        if _active is run:
            _active = None
    if finalize and not already_ended:
        from ._finalize import finalize as finalize_job

        finalize_job(run)
    return run.run_dir


def end_run(
    create_graph: bool = False,
    create_svg: bool = False,
    finalize_timeout_s: float | None = None,
    prov_detail: str | None = None,
    **ignored: Any,
) -> Path:
    """Close this rank's file, then write the job's PROV document and summary.json (rank 0).

    Every rank must call it: it returns the run directory on every rank once both files exist.
    A rank that does not arrive within ``finalize_timeout_s`` (default: the value given to
    start_run) is left out and marked incomplete; nothing waits longer.  ``prov_detail``
    overrides start_run's ("auto", "rank" or "job"; recorded in the rank file, so a later
    offline merge gives the same document).  ``create_graph`` writes graph.dot,
    ``create_svg`` also graph.svg where Graphviz is installed.  Other yProv4ML arguments are
    accepted and ignored.
    """
    if prov_detail is not None and prov_detail not in C.PROV_DETAIL_CHOICES:
        raise ConfigError(f"prov_detail must be one of {C.PROV_DETAIL_CHOICES}, got {prov_detail!r}")
    if finalize_timeout_s is not None and not (
        isinstance(finalize_timeout_s, (int, float)) and finalize_timeout_s >= 0
    ):
        raise ConfigError(f"finalize_timeout_s must be a number >= 0, got {finalize_timeout_s!r}")
    run = _require("end_run")
    if prov_detail is not None:
        run.prov_detail = prov_detail  # close() writes it into the rank file
    _end_active(run, C.STATUS_FINISHED, "end_run")
    from ._finalize import finalize

    return finalize(
        run,
        timeout_s=finalize_timeout_s,
        prov_detail=prov_detail,
        create_graph=create_graph,
        create_svg=create_svg,
    )


def active_run() -> Run | None:
    """The active run of this process, or None."""
    return _active


def get_run_dir() -> Path:
    """The active run's directory."""
    return _require("get_run_dir").run_dir


def _require(what: str) -> Run:
    run = _active
    if run is None:
        raise RunStateError(f"{what}() needs an active run; call start_run() first")
    return run


def log_metric(
    key: str,
    value: float,
    context: object = None,
    step: int | None = None,
    source: object = None,
    timestamp: float | int | None = None,
) -> None:
    """Record one point; ``step=None`` auto-increments per (key, context) series."""
    run = _active
    if run is None:
        raise RunStateError("log_metric() needs an active run; call start_run() first")
    run.log_metric(key, value, context, step, source, timestamp)


def log_metrics(metrics: Mapping[str, float], context: object = None, step: int | None = None) -> None:
    """Record several metrics with the same context and step."""
    _require("log_metrics").log_metrics(metrics, context, step)


def log_param(key: str, value: object, context: object = None) -> None:
    """Record a parameter, keeping its type."""
    _require("log_param").log_param(key, value, context)


def log_params(params: Mapping[str, object], context: object = None) -> None:
    """Record several parameters."""
    _require("log_params").log_params(params, context)


def log_artifact(
    artifact_name: str | os.PathLike[str],
    artifact_path: str | os.PathLike[str] | None = None,
    context: object = None,
    step: int | None = None,
    log_copy_in_prov_directory: bool = True,
    is_model: bool = False,
    is_input: bool = False,
) -> dict[str, object]:
    """Record a file or folder (copied into the run directory unless told otherwise)."""
    return _require("log_artifact").log_artifact(
        artifact_name, artifact_path, context, step, log_copy_in_prov_directory, is_model, is_input
    )


def log_model(
    model_name: str,
    model: object,
    context: object = None,
    step: int | None = None,
    is_input: bool = False,
    log_model_info: bool = True,
    **ignored: Any,
) -> dict[str, object]:
    """Record a model: a path, or a torch module (saved with torch.save of its state_dict)."""
    return _require("log_model").log_model(model_name, model, context, step, is_input, log_model_info)


def log_dataset(label: str, dataset: object, context: object = None, **ignored: Any) -> dict[str, object]:
    """Record a dataset or loader: type, length and loader settings."""
    return _require("log_dataset").log_dataset(label, dataset, context)


def log_execution_command(cmd: str, path: str | os.PathLike[str] | None = None) -> None:
    """Record the command that launched the job (and, optionally, the script path)."""
    run = _require("log_execution_command")
    run.log_param("execution_command", cmd)
    if path is not None:
        run.log_param("execution_path", os.fspath(path))


def log_source_code(path: str | os.PathLike[str] | None = None) -> dict[str, object]:
    """Record the code that ran: git commit, or hashes of the source files."""
    return _require("log_source_code").log_source_code(path)


def log_current_execution_time(label: str, context: object = None, step: int | None = None) -> None:
    """Log the current wall-clock time (seconds since the epoch) as metric ``label``."""
    _require("log_current_execution_time").log_metric(label, time.time(), context, step)


def log_execution_start_time() -> None:
    """Record the execution start time (seconds since the epoch) as a param and an event."""
    run = _require("log_execution_start_time")
    run.log_param("execution_start_time", time.time())
    run.log_event("execution_start")


def log_execution_end_time() -> None:
    """Record the execution end time (seconds since the epoch) as a param and an event."""
    run = _require("log_execution_end_time")
    run.log_param("execution_end_time", time.time())
    run.log_event("execution_end")


def log_system_metrics(context: object = None, step: int | None = None) -> None:
    """Record one sample of CPU, memory, disk, network and GPU readings now, tied to ``step``."""
    _require("log_system_metrics").log_system_metrics(context, step)


def log_carbon_metrics(context: object = None, step: int | None = None) -> None:
    """Record codecarbon's cumulative energy (J) and emissions (kg CO2e) now, tied to ``step``."""
    _require("log_carbon_metrics").log_carbon_metrics(context, step)
