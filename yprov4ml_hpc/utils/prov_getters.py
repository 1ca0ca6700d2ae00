"""yProv4ML 2.x's ``utils.prov_getters``, reading this project's documents and rank files.

``data`` is a loaded document (``json.load``) as upstream, or its path.  Metrics are named
by entity id (``get_metrics`` lists them), by metric name, or by ``<name>_<context>``;
``get_metric`` reads the points from the rank files (every rank, in rank order) and returns
upstream's DataFrame (``epoch``, ``value``, ``time`` in ms, or s with ``time_in_sec``).
"""

from __future__ import annotations

from typing import Any

from .._context import context_name
from ._doc import entities_of_type, load_document, pandas, run_dir_of, unwrap

__all__ = [
    "get_avg_metric",
    "get_execution_command",
    "get_experiemnt_id",
    "get_experiment_id",
    "get_inputs",
    "get_metric",
    "get_metric_time",
    "get_metrics",
    "get_outputs",
    "get_param",
    "get_params",
    "get_source_code",
    "get_sum_metric",
]


def get_metrics(data: Any, keyword: str | None = None) -> list[str]:
    """Ids of the job-level metric series; with ``keyword``, those whose id or name contains it
    or whose context it names (``keyword="TRAINING"``, as upstream's docs select a phase, whose
    ids held the context; contexts match without regard to case, as everywhere here)."""
    doc = load_document(data)
    ids = [
        ident
        for ident, attrs in entities_of_type(doc, "yprov4ml:MetricSeries")
        if "yprov4ml:rank" not in attrs
    ]
    if keyword is None:
        return ids
    entity = doc["entity"]
    return [
        i for i in ids
        if keyword in i
        or keyword in str(entity[i].get("yprov4ml:name", ""))
        or keyword.casefold() == str(entity[i].get("yprov4ml:context", "")).casefold()
    ]


def _series_key(doc: dict[str, Any], metric: str) -> tuple[str, str | None]:
    entity = doc.get("entity", {}).get(metric)
    if entity is not None:
        return str(entity.get("yprov4ml:name")), str(entity.get("yprov4ml:context"))
    names = {str(a.get("yprov4ml:name")): a for _, a in entities_of_type(doc, "yprov4ml:MetricSeries")}
    if metric in names:
        return metric, None
    head, _, ctx = metric.rpartition("_")
    if head in names:
        return head, context_name(ctx)
    raise AttributeError(f">get_metric({metric}) not found in prov file")


def get_metric(
    data: Any,
    metric: str,
    time_in_sec: bool = False,
    time_incremental: bool = False,
    sort_by: str | None = None,
    start_at: int | None = None,
    end_at: int | None = None,
) -> Any:
    pd = pandas()
    from .._reader import load_run

    doc = load_document(data)
    name, ctx = _series_key(doc, metric)
    run = load_run(run_dir_of(data))
    epochs: list[int] = []
    values: list[float] = []
    times: list[float] = []
    for metric_name, context, rank in run.series_keys():
        if metric_name == name and (ctx is None or context == ctx):
            series = run.series(metric_name, context, rank)
            epochs.extend(series.step.tolist())
            values.extend(series.value.tolist())
            times.extend((series.time_ns // 1_000_000).tolist())
    start = 0 if start_at is None else start_at
    end = len(epochs) if end_at is None else end_at
    epochs, values, times = epochs[start:end], values[start:end], times[start:end]
    if time_in_sec:
        times = [t / 1000.0 for t in times]
    df = pd.DataFrame({"epoch": epochs, "value": values, "time": times})
    if time_incremental:
        df["time"] = df["time"].diff().fillna(0)
    if sort_by is not None:
        df = df.sort_values(by=sort_by)
    return df


def get_avg_metric(data: Any, metric: str) -> float:
    values = get_metric(data, metric)["value"]
    return float(values.sum() / len(values))


def get_sum_metric(data: Any, metric: str) -> float:
    return float(get_metric(data, metric)["value"].sum())


def get_metric_time(data: Any, metric: str, time_in_sec: bool = False) -> float:
    times = get_metric(data, metric, time_in_sec=time_in_sec)["time"]
    return float(times.max() - times.min())


def _params(doc: dict[str, Any]) -> list[tuple[str, Any]]:
    return [
        (str(attrs.get("yprov4ml:name")), unwrap(attrs.get("prov:value")))
        for _, attrs in entities_of_type(doc, "yprov4ml:Parameter")
    ]


def get_params(data: Any, param: str) -> list[Any]:
    """Values of every param whose name contains ``param``."""
    return [value for name, value in _params(load_document(data)) if param in name]


def get_param(data: Any, param: str) -> Any:
    """The value of param ``param`` (upstream's ``prov-ml:`` prefix is dropped), or None."""
    wanted = param.split(":", 1)[1] if param.startswith("prov-ml:") else param
    for name, value in _params(load_document(data)):
        if name == wanted:
            return value
    return None


def get_experiment_id(data: Any) -> str | None:
    """``<experiment>_<run_id>``, the run's directory name."""
    for attrs in load_document(data).get("activity", {}).values():
        if attrs.get("yprov4ml:run_id") is not None:
            return f"{attrs.get('yprov4ml:experiment')}_{attrs.get('yprov4ml:run_id')}"
    return None


get_experiemnt_id = get_experiment_id  # upstream's spelling


def get_execution_command(data: Any) -> Any:
    return get_param(data, "execution_command")


def get_source_code(data: Any) -> Any:
    return get_param(data, "source_code")


def _by_role(data: Any, role: str) -> list[str]:
    doc = load_document(data)
    return [
        str(attrs.get("yprov4ml:name"))
        for attrs in doc.get("entity", {}).values()
        if attrs.get("yprov4ml:role") == role
    ]


def get_inputs(data: Any) -> list[str]:
    """Names of the artifacts, models and datasets the run used."""
    return _by_role(data, "input")


def get_outputs(data: Any) -> list[str]:
    """Names of the artifacts and models the run produced."""
    return _by_role(data, "output")
