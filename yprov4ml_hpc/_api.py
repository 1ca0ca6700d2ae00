"""The module-level API, drop-in for yProv4ML: ``import yprov4ml_hpc as prov4ml``.

One run is active per process; every ``log_*`` function forwards to it.  Arguments that
yProv4ML has and we do not need are accepted and ignored (listed in ``IGNORED_ARGUMENTS``),
so existing scripts run unchanged.
"""

from __future__ import annotations

import numbers
import os
import time
from collections.abc import Mapping, Sequence
from enum import Enum
from pathlib import Path
from typing import Any

from . import _active as _slot
from . import _constants as C
from ._compat import _state as _compat_state
from ._compat._layouts import NOT_GIVEN, Layout, check_type, is_int, upstream_layouts, warn_unknown
from ._compat._start import check_start_types, launcher_rank, metrics_file_type_wants_csv, run_id_from
from ._compat._state import final_metrics as _final_metrics
from ._compat._state import fold_final as _fold_final
from ._errors import ConfigError, ConfigTypeError, RunStateError
from ._run import Run, check_end_options

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
        "use_compressor",  # the HDF5 layout is fixed by the storage contract
        "unify_experiments",
        "create_provenance_collection",
        "log_on_rank",
        "create_dataset_entities",
        "create_model_entities",
    }
)


_START_RUN_2X = Layout(
    "yProv4ML 2.0.x",
    (
        "experiment_name",
        "prov_user_namespace",
        "provenance_save_dir",
        "collect_all_processes",
        "save_after_n_logs",
        "rank",
        "disable_codecarbon",
        "metrics_file_type",
        "csv_separator",
        "use_compressor",
    ),
    lambda args: len(args) > 6 and isinstance(args[6], bool),  # 3.2.x has metrics_file_type there
)


@upstream_layouts(_START_RUN_2X)
def start_run(
    experiment_name: str,
    prov_user_namespace: str | None = None,
    provenance_save_dir: str | os.PathLike[str] | None = None,
    collect_all_processes: bool | None = False,
    save_after_n_logs: int | None = 100,
    rank: int | None = None,
    metrics_file_type: str | None = None,
    csv_separator: str = ",",
    use_compressor: object = None,
    use_run_id: int | str | None = None,
    *,
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
    writer: str | None = None,
    **ignored: Any,
) -> Run:
    """Start the provenance run of this rank and make it the active one.

    The positional parameters are yProv4ML 3.2.x's, in its order (a 2.0.x call, with
    ``disable_codecarbon`` seventh, is recognised by that bool); ours are keyword-only.
    ``experiment_name`` and the run id name the run directory
    ``<provenance_save_dir>/<experiment_name>_<run_id>/``; every rank of an MPI, Slurm or
    torchrun job agrees on it.  Without a launcher job id the id is upstream's counter
    ``N`` (``mnist_0``, ``mnist_1``, ...); ``use_run_id=N`` (or ``run_id="..."``) chooses it.
    ``metrics_file_type="csv"`` also writes every series as upstream's CSV files at the end
    (``csv_separator`` between columns).  ``buffer_size`` points per series are held in
    memory and written when full or after ``flush_interval_s`` seconds (0: only when full
    and at the end).  ``save_after_n_logs``, ``collect_all_processes`` and
    ``use_compressor`` are accepted and ignored (every rank is always collected; the HDF5
    layout is fixed).

    Background samplers record CPU/memory/disk/network (psutil), the GPUs this rank owns
    (NVML: ``gpu_ids``, else ``CUDA_VISIBLE_DEVICES``, else GPU g -> local rank g mod local
    ranks) and energy every ``system_metrics_interval_s`` seconds (default 10, env
    ``YPROV4ML_HPC_SYSTEM_METRICS_INTERVAL_S``; 0 = only at start and end).  codecarbon (the
    ``carbon`` extra) runs once per node unless ``disable_codecarbon=True`` or env
    ``YPROV4ML_HPC_CARBON=0``; ``carbon_country_iso_code`` sets its grid (default USA).

    ``writer`` chooses who writes the rank's journal: ``"thread"`` (default), a thread of this
    process, or ``"process"``, a small process of its own that reads the metric rings from
    shared memory, so that the training thread never waits for the GIL on the journal's behalf
    (the slowest ``log_metric`` calls; see the README).  Env ``YPROV4ML_HPC_WRITER``.
    """
    warn_unknown("start_run", ignored, IGNORED_ARGUMENTS)
    check_start_types(collect_all_processes, save_after_n_logs, rank, csv_separator, disable_codecarbon)
    csv_wanted = metrics_file_type_wants_csv(metrics_file_type)
    if rank is not None and comm is None and rank == launcher_rank():
        rank = None  # upstream scripts pass the launcher's own rank: keep MPI's collective path
    run_id = run_id_from(run_id, use_run_id)
    for name, value in (
        ("save_after_n_logs", save_after_n_logs),
        ("collect_all_processes", collect_all_processes),
        ("use_compressor", use_compressor),
    ):
        if value is not None:
            ignored[name] = value
    save_dir = provenance_save_dir or os.environ.get(C.ENV_SAVE_DIR) or C.DEFAULT_SAVE_DIR
    with _slot.lock:
        active = _slot.current()
        if active is not None:
            raise RunStateError(
                f"a run is already active ({active.experiment}_{active.run_id}); "
                "call end_run() before start_run()"
            )
        run = Run(
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
            writer=_writer_from(writer),
        )
        # What ending the run writes besides the document (upstream's start_run options).
        run.csv_metrics, run.csv_separator = csv_wanted, csv_separator
        _compat_state.reset()
        _slot.set_current(run)
        return run


def _writer_from(value: str | None) -> str:
    """start_run's ``writer``, else env YPROV4ML_HPC_WRITER, else the default (Run checks it)."""
    if value is not None:
        return value
    return os.environ.get(C.ENV_JOURNAL_WRITER) or C.DEFAULT_JOURNAL_WRITER


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


def end_run(
    create_graph: bool | None = False,
    create_svg: bool | None = False,
    crate_ro_crate: bool | None = False,
    create_card: bool | None = False,
    *,
    finalize_timeout_s: float | None = None,
    prov_detail: str | None = None,
    **ignored: Any,
) -> Path | None:
    """Close this rank's file, then write the job's PROV document and summary.json (rank 0).

    The positional parameters are yProv4ML 3.2.x's (2.0.x has the first three); ours are
    keyword-only.  Every rank must call it: it returns the run directory on every rank once
    the document exists.  Without an active run it does nothing and returns None, as
    upstream does.  A rank that does not arrive within ``finalize_timeout_s`` (default: the
    value given to start_run) is left out and marked incomplete; nothing waits longer.
    ``prov_detail`` overrides start_run's ("auto", "rank" or "job").  ``create_graph``
    writes graph.dot, ``create_svg`` also graph.svg where Graphviz is installed;
    ``crate_ro_crate`` writes an RO-Crate of the run directory (``ro-crate-metadata.json``,
    the ``rocrate`` extra), ``create_card`` a run card (``card.json``) from the summary; with
    ``metrics_file_type="csv"`` at start_run the series are also written as CSV.  These
    extra files are written by rank 0.
    """
    warn_unknown("end_run", ignored)
    for name, flag in (
        ("create_graph", create_graph),
        ("create_svg", create_svg),
        ("crate_ro_crate", crate_ro_crate),
        ("create_card", create_card),
    ):
        check_type("end_run", name, flag, (bool,), "yProv4ML 3.2.x")
    check_end_options(finalize_timeout_s=finalize_timeout_s, prov_detail=prov_detail)  # even with no run
    run = _slot.current()
    if run is None:
        return None  # yProv4ML: end_run() without a run is a no-op
    run_dir = run.end(
        create_graph=bool(create_graph),
        create_svg=bool(create_svg),
        crate_ro_crate=bool(crate_ro_crate),
        create_card=bool(create_card),
        finalize_timeout_s=finalize_timeout_s,
        prov_detail=prov_detail,
    )
    from ._compat._result import RunDirectory

    return RunDirectory(run_dir)  # a Path that also unpacks as 2.0.x's (prov, dot, svg, crate)


def active_run() -> Run | None:
    """The active run of this process, or None."""
    return _slot.current()


def get_run_dir() -> Path:
    """The active run's directory."""
    return _require("get_run_dir").run_dir


def _require(what: str) -> Run:
    run = _slot._current
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
    """Record one point; ``step=None`` auto-increments per (key, context) series.

    ``source`` (yProv4ML's producing library) is accepted and not stored.  No ``**kwargs``
    here: this is the hot path, and upstream's log_metric has exactly these parameters.
    """
    run = _slot._current  # the hot path: one attribute read, no call
    if run is None:
        raise RunStateError("log_metric() needs an active run; call start_run() first")
    run.log_metric(key, value, context, step, source, timestamp)
    if _final_metrics:  # register_final_metric: empty dict -> one truth test per call
        _fold_final(key, value)


def log_metrics(metrics: Mapping[str, float], context: object = None, step: int | None = None) -> None:
    """Record several metrics with the same context and step."""
    _require("log_metrics").log_metrics(metrics, context, step)
    if _final_metrics:
        for key, value in metrics.items():
            _fold_final(key, value)


def log_param(
    key: str,
    value: object,
    context: object = None,
    source: str | None = None,
    is_input: bool = False,
    **ignored: Any,
) -> None:
    """Record a parameter, keeping its type (nested NumPy scalars and paths become plain values).

    ``source`` and ``is_input`` (yProv4ML 3.2.x) are stored with it.
    """
    warn_unknown("log_param", ignored)
    check_type("log_param", "is_input", is_input, (bool,), "yProv4ML 3.2.x")
    _require("log_param").log_param(key, value, context, source=source, is_input=is_input)


def log_params(params: Mapping[str, object], context: object = None) -> None:
    """Record several parameters."""
    _require("log_params").log_params(params, context)


_LOG_ARTIFACT_2X = Layout(
    "yProv4ML 2.0.x",
    (
        "artifact_name",
        "artifact_path",
        "context",
        "step",
        "log_copy_in_prov_directory",
        "is_model",
        "is_input",
    ),
    # 3.2.x has source (a str) fourth and step (an int) fifth; 2.0.x step fourth, a bool fifth.
    lambda a: len(a) > 3 and (is_int(a[3]) or (len(a) > 4 and isinstance(a[4], bool))),
)
# prov4ml's docs: log_artifact(artifact_path, value, context, step, timestamp, log_copy_in_prov_directory),
# the name first and the file (or value) second as ours; recognised by the step (an int) fourth,
# where 3.2.x has source, and a number fifth (the timestamp), where 2.0.x has a bool.
_LOG_ARTIFACT_DOCS = Layout(
    "prov4ml's docs",
    ("artifact_name", "artifact_path", "context", "step", "timestamp", "log_copy_in_prov_directory"),
    lambda a: len(a) > 4 and is_int(a[3]) and isinstance(a[4], numbers.Real) and not isinstance(a[4], bool),
)


@upstream_layouts(_LOG_ARTIFACT_DOCS, _LOG_ARTIFACT_2X)
def log_artifact(
    artifact_name: str | os.PathLike[str] | None = None,
    artifact_path: str | os.PathLike[str] | None = None,
    context: object = None,
    source: str | None = None,
    step: int | None = None,
    log_copy_in_prov_directory: bool = True,
    log_copy_subdirectory: str | None = None,
    is_model: bool = False,
    is_input: bool = False,
    other_attrs: Mapping[str, object] | None = None,
    **ignored: Any,
) -> dict[str, object]:
    """Record a file or folder (copied into the run directory unless told otherwise).

    3.2.x order; a 2.0.x call (``step`` fourth) is recognised by its types, and the 1.x form
    ``log_artifact(path, context)`` names the artifact after the file.  A copy keeps the
    file's extension when ``artifact_name`` has none; ``log_copy_subdirectory`` puts it in
    that sub-folder; ``source`` and ``other_attrs`` are stored with the record.
    prov4ml's docs name the two first parameters ``artifact_path`` (the name) and ``value`` (the
    file, or any value: one that is not a path is recorded as a param of that name).
    """
    value = ignored.pop("value", NOT_GIVEN)
    ignored.pop("timestamp", None)  # prov4ml's docs: accepted and ignored (recorded at call time)
    warn_unknown("log_artifact", ignored)
    if value is not NOT_GIVEN:  # the docs' keywords: artifact_path= is the name, value= the file
        if artifact_name is None:
            artifact_name, artifact_path = artifact_path, None
        if artifact_path is not None:
            raise ConfigTypeError(
                "log_artifact() got the file twice: artifact_path=... and value=... (prov4ml's docs "
                "name them artifact_path= and value=; 3.2.x artifact_name= and artifact_path=)"
            )
        artifact_path = value
    if artifact_name is None:
        raise ConfigTypeError(
            "log_artifact() needs a name and a file: log_artifact(artifact_name, artifact_path)"
        )
    if artifact_path is not None and not isinstance(artifact_path, (str, os.PathLike, Enum)):
        # prov4ml's docs: "the value can be any artifact, a file, a path, a value"
        check_type("log_artifact", "step", step, (int,), "yProv4ML 2.0.x and 3.2.x")
        extra = _extra(source, other_attrs)
        run = _require("log_artifact")
        source_name = extra.get("source")
        run.log_param(os.fspath(artifact_name), artifact_path, context,
                      source=None if source_name is None else str(source_name), is_input=bool(is_input))
        return {"name": os.fspath(artifact_name), "value": artifact_path, "kind": "param"}
    for name, flag in (
        ("log_copy_in_prov_directory", log_copy_in_prov_directory),
        ("is_model", is_model),
        ("is_input", is_input),
    ):
        check_type("log_artifact", name, flag, (bool,), "yProv4ML 2.0.x and 3.2.x")
    check_type("log_artifact", "step", step, (int,), "yProv4ML 2.0.x and 3.2.x")
    if (
        isinstance(artifact_path, str)
        and context is None
        and not os.path.exists(artifact_path)
        and os.path.exists(os.fspath(artifact_name))
    ):
        # prov4ml 1.x: log_artifact(path, context) with the context given as a string
        artifact_path, context = None, artifact_path
    return _require("log_artifact").log_artifact(
        artifact_name,
        artifact_path,
        context,
        step,
        log_copy_in_prov_directory,
        is_model,
        is_input,
        subdirectory=log_copy_subdirectory,
        extra=_extra(source, other_attrs),
    )


def _extra(source: object, other_attrs: Mapping[str, object] | None) -> dict[str, object]:
    extra: dict[str, object] = {}
    if source is not None:
        extra["source"] = str(getattr(source, "value", source))
    if other_attrs:
        if not isinstance(other_attrs, Mapping):
            raise ConfigTypeError(
                f"other_attrs must be a dict as in yProv4ML 3.2.x, got {type(other_attrs).__name__}"
            )
        extra["attributes"] = {str(k): v for k, v in other_attrs.items()}
    return extra


def _object_first(args: Sequence[object]) -> bool:
    """prov4ml 1.x passed the model/dataset first and its name second."""
    return not isinstance(args[0], (str, os.PathLike))


_LOG_MODEL_2X = Layout(
    "yProv4ML 2.0.x",
    ("model_name", "model", "context", "log_model_info", "log_model_layers", "is_input"),
    lambda a: len(a) > 3 and isinstance(a[3], bool),  # 3.2.x has source (a str) fourth
)
_LOG_MODEL_1X = Layout(
    "prov4ml 1.x", ("model", "model_name", "log_model_info", "log_as_artifact"), _object_first
)
# prov4ml's docs: log_model(model, model_name, log_model_info, log_model_layers, log_as_artifact)
_LOG_MODEL_DOCS = Layout(
    "prov4ml's docs",
    ("model", "model_name", "log_model_info", "log_model_layers", "log_as_artifact"),
    lambda a: len(a) == 5 and _object_first(a),
)


@upstream_layouts(_LOG_MODEL_DOCS, _LOG_MODEL_1X, _LOG_MODEL_2X)
def log_model(
    model_name: str = "default",
    model: object = None,
    context: object = None,
    source: str | None = None,
    log_model_info: bool = True,
    log_model_layers: bool = False,
    log_copy_in_prov_directory: bool = True,
    is_input: bool = False,
    other_attrs: Mapping[str, object] | None = None,
    *,
    step: int | None = None,
    **ignored: Any,
) -> dict[str, object]:
    """Record a model: a path, or a torch module (saved with torch.save of its state_dict).

    3.2.x order; 2.0.x (flags fourth) and prov4ml 1.x (model first) calls are recognised by
    their types.  ``log_model_layers`` also stores a JSON description of the layers.
    ``log_copy_in_prov_directory`` is accepted and ignored: a module is saved into the run
    directory in any case.
    """
    warn_unknown("log_model", ignored, frozenset({"log_as_artifact"}))
    if model is None:
        raise ConfigTypeError("log_model() needs the model (a torch module, a path or any object)")
    for name, flag in (
        ("log_model_info", log_model_info),
        ("log_model_layers", log_model_layers),
        ("log_copy_in_prov_directory", log_copy_in_prov_directory),
        ("is_input", is_input),
    ):
        check_type("log_model", name, flag, (bool,), "yProv4ML 2.0.x and 3.2.x")
    run = _require("log_model")
    record = run.log_model(model_name, model, context, step, bool(is_input), bool(log_model_info))
    if log_model_layers:
        from ._compat._layers import log_model_layers as write_layers

        write_layers(run, model_name, model, context)
    extra = _extra(source, other_attrs)
    if extra:
        run.log_event("model_attributes", name=model_name, **extra)
    return record


_LOG_DATASET_2X = Layout(
    "yProv4ML 2.0.x",
    ("dataset_label", "dataset", "context", "log_dataset_info"),
    lambda a: len(a) > 3 and isinstance(a[3], bool),
)
_LOG_DATASET_1X = Layout("prov4ml 1.x", ("dataset", "dataset_label"), _object_first)


@upstream_layouts(_LOG_DATASET_1X, _LOG_DATASET_2X)
def log_dataset(
    dataset_label: str | None = None,
    dataset: object = None,
    context: object = None,
    source: str | None = None,
    log_dataset_info: bool = True,
    other_attrs: Mapping[str, object] | None = None,
    **ignored: Any,
) -> dict[str, object]:
    """Record a dataset or loader: type, length and loader settings.

    3.2.x order; 2.0.x (``log_dataset_info`` fourth) and prov4ml 1.x (dataset first) calls
    are recognised by their types.  ``log_dataset_info=False`` records only the label and type.
    """
    label = ignored.pop("label", None)  # prov4ml's docs: log_dataset(dataset, label)
    warn_unknown("log_dataset", ignored)
    if dataset_label is None:
        dataset_label = label
    if dataset_label is None or dataset is None:
        raise ConfigTypeError(
            "log_dataset() needs a label and a dataset: log_dataset(dataset_label, dataset)"
        )
    check_type("log_dataset", "log_dataset_info", log_dataset_info, (bool,), "yProv4ML 2.0.x and 3.2.x")
    run = _require("log_dataset")
    record = run.log_dataset(dataset_label, dataset, context, info=bool(log_dataset_info))
    extra = _extra(source, other_attrs)
    if extra:
        run.log_event("dataset_attributes", name=dataset_label, **extra)
    return record


def log_execution_command(cmd: str, path: str | os.PathLike[str] | None = None) -> None:
    """Record the command that launched the job (and, optionally, the script path)."""
    run = _require("log_execution_command")
    run.log_param("execution_command", cmd)
    if path is not None:
        run.log_param("execution_path", os.fspath(path))


def log_source_code(
    use_git: bool | str | os.PathLike[str] = False, path: str | os.PathLike[str] | None = None
) -> dict[str, object]:
    """Record the code that ran: git commit, or hashes of the source files.

    3.2.x's only argument is ``use_git``; 2.0.x's was ``path`` (a path passed first is taken
    as that).  The git commit is recorded whenever there is one.
    """
    if isinstance(use_git, (str, os.PathLike)):
        path = use_git
    else:
        check_type("log_source_code", "use_git", use_git, (bool,), "yProv4ML 3.2.x")
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
