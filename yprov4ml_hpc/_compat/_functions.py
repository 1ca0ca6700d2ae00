"""yProv4ML module-level functions that the core API does not have under these names.

Each one records through the active :class:`~yprov4ml_hpc.Run` of this rank, so its data
lands in the rank file and, after ``end_run``, in the job's document and summary.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import _api
from .._errors import ConfigTypeError
from ._enums import FoldOperation
from ._layouts import NOT_GIVEN, Layout, check_type, is_int, upstream_layouts, warn_unknown
from ._state import final_metrics, flops_total, io_counts, model_versions

if TYPE_CHECKING:
    pass

__all__ = [
    "create_context",
    "get_artifacts_dir",
    "log_context",
    "log_flops_per_batch",
    "log_flops_per_epoch",
    "log_input",
    "log_output",
    "log_provenance_documents",
    "register_final_metric",
    "save_model_version",
]


def log_provenance_documents(
    create_graph: bool | None = False, create_svg: bool | None = False, crate_ro_crate: bool | None = False
) -> Path | None:
    """yProv4ML's itwinai alias of :func:`end_run`."""
    return _api.end_run(create_graph, create_svg, crate_ro_crate)


def get_artifacts_dir() -> Path:
    """This rank's artifact folder ``<run_dir>/artifacts/rank_NNNNNN`` (created on first use)."""
    return _api._require("get_artifacts_dir").artifacts_dir


_SAVE_MODEL_2X = Layout(
    "yProv4ML 2.0.x",
    ("model_name", "model", "context", "step", "incremental", "is_input"),
    lambda a: len(a) > 3 and (is_int(a[3]) or (len(a) > 4 and isinstance(a[4], bool))),
)
_SAVE_MODEL_1X = Layout(
    "prov4ml 1.x",
    ("model", "model_name", "context", "step", "timestamp"),
    lambda a: not isinstance(a[0], (str, os.PathLike)),
)


@upstream_layouts(_SAVE_MODEL_1X, _SAVE_MODEL_2X)
def save_model_version(
    model_name: str,
    model: object,
    context: object = None,
    source: str | None = None,
    step: int | None = None,
    incremental: bool = True,
    is_input: bool = False,
    log_copy_in_prov_directory: bool = True,
    other_attrs: Mapping[str, object] | None = None,
    **ignored: Any,
) -> dict[str, object]:
    """Save a version of ``model`` (torch ``state_dict``) and record it as a model artifact.

    ``incremental=True`` numbers the versions ``<model_name>_0``, ``_1``, ... per rank, as
    upstream does; otherwise the name is ``model_name``.  3.2.x order; 2.0.x (``step``
    fourth) and prov4ml 1.x (model first) calls are recognised by their types.
    """
    warn_unknown("save_model_version", ignored, frozenset({"timestamp"}))
    check_type("save_model_version", "step", step, (int,), "yProv4ML 2.0.x and 3.2.x")
    check_type("save_model_version", "incremental", incremental, (bool,), "yProv4ML 2.0.x and 3.2.x")
    run = _api._require("save_model_version")
    name = model_name
    if incremental:
        number = model_versions.get(model_name, 0)
        model_versions[model_name] = number + 1
        name = f"{model_name}_{number}"
    record = run.log_model(name, model, context, step, bool(is_input), False)
    if source is not None or other_attrs:
        run.log_event(
            "model_attributes",
            name=name,
            **({"source": str(source)} if source is not None else {}),
            **({"attributes": dict(other_attrs)} if other_attrs else {}),
        )
    return record


def create_context(context: str, is_subcontext_of: str | None = None) -> None:
    """yProv4ML 2.0.x: declare a context (and the context it belongs to)."""
    log_context(context, is_subcontext_of)


def log_context(context: object, is_subcontext_of: object = None, source_of_data: str | None = None) -> None:
    """Declare a context; it appears in the document with its parent and data source.

    Recorded as the param ``<context>.is_subcontext_of`` (the parent's name, or None),
    so every rank's declaration reaches the job's document.
    """
    from .._context import context_name

    run = _api._require("log_context")
    parent = None if is_subcontext_of is None else context_name(is_subcontext_of)
    run.log_param(f"{context_name(context)}.is_subcontext_of", parent, context, source=source_of_data)


def log_flops_per_batch(
    label: str, model: Any, batch: Any, context: object = None, step: int | None = None
) -> float:
    """Count the FLOPs of one forward pass of ``model`` on ``batch`` (torch's FlopCounterMode).

    Like upstream, the logged value is this rank's running total over its calls; it is
    returned too.  ``batch`` is ``(inputs, targets)`` or the inputs alone.
    """
    from ._flops import count_forward_flops

    run = _api._require("log_flops_per_batch")
    total = flops_total[label] = flops_total.get(label, 0.0) + count_forward_flops(model, _inputs_of(batch))
    run.log_metric(label, total, context, step, "torch.utils.flop_counter")
    return total


def log_flops_per_epoch(
    label: str, model: Any, dataset: Any, context: object = None, step: int | None = None
) -> float:
    """FLOPs of one epoch: the FLOPs of one sample times the dataset's length (as upstream).

    The logged value is this rank's running total over its calls; it is returned too.
    """
    from ._flops import count_forward_flops, first_sample

    run = _api._require("log_flops_per_epoch")
    sample, samples = first_sample(dataset)
    per_epoch = count_forward_flops(model, _inputs_of(sample)) * samples
    total = flops_total[label] = flops_total.get(label, 0.0) + per_epoch
    run.log_metric(label, total, context, step, "torch.utils.flop_counter")
    return total




def _inputs_of(batch: Any) -> Any:
    if isinstance(batch, (tuple, list)) and batch:
        return batch[0]
    return batch


# The current docs' form: log_input(inp, log_copy_in_prov_directory=True), the value alone
# (named input_0, input_1, ...); recognised by one argument, or a bool second.
def _value_alone(args: Sequence[object]) -> bool:
    return len(args) == 1 or (len(args) == 2 and isinstance(args[1], bool))


_LOG_INPUT_DOCS = Layout("prov4ml's docs", ("inp", "log_copy_in_prov_directory"), _value_alone)
_LOG_OUTPUT_DOCS = Layout("prov4ml's docs", ("out", "log_copy_in_prov_directory"), _value_alone)


@upstream_layouts(_LOG_INPUT_DOCS)
def log_input(
    name: str | None = None,
    value: object = NOT_GIVEN,
    context: object = None,
    source: str | None = None,
    step: int | None = None,
    *,
    inp: object = NOT_GIVEN,
    log_copy_in_prov_directory: bool = True,
    **ignored: Any,
) -> dict[str, object] | None:
    """Record something the run used: a path becomes an input artifact, anything else an input param.

    ``log_input(name, value, ...)``, or the docs' ``log_input(inp)``, named ``input_0``, ``input_1``, ...
    """
    warn_unknown("log_input", ignored)
    return _log_io(
        "log_input", name, value, inp, context, source, step, log_copy_in_prov_directory, is_input=True
    )


@upstream_layouts(_LOG_OUTPUT_DOCS)
def log_output(
    name: str | None = None,
    value: object = NOT_GIVEN,
    context: object = None,
    source: str | None = None,
    step: int | None = None,
    *,
    out: object = NOT_GIVEN,
    log_copy_in_prov_directory: bool = True,
    **ignored: Any,
) -> dict[str, object] | None:
    """Record something the run produced: a path becomes an artifact, anything else a param.

    ``log_output(name, value, ...)``, or the docs' ``log_output(out)``, named ``output_0``, ...
    """
    warn_unknown("log_output", ignored)
    return _log_io(
        "log_output", name, value, out, context, source, step, log_copy_in_prov_directory, is_input=False
    )


def _log_io(
    what: str,
    name: str | None,
    value: object,
    alone: object,
    context: object,
    source: str | None,
    step: int | None,
    copy: bool,
    *,
    is_input: bool,
) -> dict[str, object] | None:
    check_type(what, "log_copy_in_prov_directory", copy, (bool,), "prov4ml's docs")
    run = _api._require(what)
    kind = "input" if is_input else "output"
    if alone is not NOT_GIVEN:  # the docs' form: the value alone, named by its number in call order
        if name is not None or value is not NOT_GIVEN:
            raise ConfigTypeError(
                f"{what}() takes either (name, value, ...) or the value alone "
                f"({what}({kind[:3]}=...)), not both"
            )
        value = alone
    elif value is NOT_GIVEN:
        raise ConfigTypeError(f"{what}() needs a value: {what}(name, value) or {what}(value)")
    if name is None:
        name = f"{kind}_{io_counts.get(kind, 0)}"
        io_counts[kind] = io_counts.get(kind, 0) + 1
    if isinstance(value, (str, os.PathLike)) and Path(os.fspath(value)).exists():
        extra = {"source": str(source)} if source is not None else None
        return run.log_artifact(name, value, context, step, copy, False, is_input, extra=extra)
    run.log_param(name, value, context, source=source, is_input=is_input)
    return None


def register_final_metric(
    metric_name: str, initial_value: float, fold_operation: Callable[[Any, Any], Any] = FoldOperation.ADD
) -> None:
    """Fold every value later logged as ``metric_name`` (any context) into one final value.

    ``fold_operation`` is a :class:`FoldOperation` member or any two-argument function.  At
    ``end_run`` the result is recorded as the param ``<metric_name>_final`` of this rank
    (context ``final``), with the fold's name in ``<metric_name>_final_fold``.
    """
    if not isinstance(metric_name, str) or not metric_name:
        raise ConfigTypeError(
            f"register_final_metric(metric_name=...) must be a non-empty str, got {metric_name!r}"
        )
    if not callable(fold_operation):
        raise ConfigTypeError(
            "register_final_metric(fold_operation=...) must be a FoldOperation member "
            f"(ADD, SUBTRACT, MULTIPLY, MIN, MAX) or a function of two values, got {fold_operation!r}"
        )
    _api._require("register_final_metric")
    final_metrics[metric_name] = [initial_value, fold_operation]
