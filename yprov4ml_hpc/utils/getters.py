"""yProv4ML 3.x's ``utils.getters``, reading this project's documents and rank files.

Same functions, parameters and return types as upstream: lists of record names, dicts of
attributes, pandas DataFrames for metrics.  Record names are ours (``run:m0``, ``run:p3``,
...); a name that is not a record id is also looked up as a metric/param/artifact name or a
context, and upstream's entity types (``provml:Metric``, ...) select ours.  ``get_metric``
reads the series from the rank files (every rank, a ``rank`` column added), with upstream's
CSV columns ``epoch``, ``value``, ``timestep`` (milliseconds since the epoch).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from .._context import context_name
from ._doc import entities_of_type, load_document, pandas, run_dir_of, unwrap

__all__ = [
    "get_metric",
    "get_parameter",
    "list_activities",
    "list_entities",
    "list_metric_paths",
    "list_metrics",
    "list_parameters",
    "list_provjson_in_proj",
    "list_runs_in_proj",
]

Source = dict[str, Any] | str | os.PathLike[str]
_PREFIXES = ("yprov4ml:", "prov:", "dcterms:")


def list_activities(source: Source) -> list[str]:
    """The ids of all activities (job, nodes, ranks, contexts)."""
    return list(load_document(source).get("activity", {}))


def list_entities(source: Source, entity_type: str | None = None) -> list[str]:
    """The ids of all entities, or of one type (``"yprov4ml:Model"`` or upstream's ``"provml:Model"``)."""
    doc = load_document(source)
    if entity_type is None:
        return list(doc.get("entity", {}))
    return [ident for ident, _ in entities_of_type(doc, entity_type)]


def _record(doc: dict[str, Any], name: str) -> dict[str, Any]:
    for section in ("activity", "entity", "agent"):
        record = doc.get(section, {}).get(name)
        if record is not None:
            return dict(record)
    upstream = _upstream_record(doc, name)
    if upstream is not None:
        return upstream
    for section in ("entity", "activity"):  # by name: a metric, param, artifact, or a context
        for attrs in doc.get(section, {}).values():
            if unwrap(attrs.get("yprov4ml:name")) == name:
                return dict(attrs)
    wanted = context_name(name)
    for attrs in doc.get("activity", {}).values():
        if attrs.get("yprov4ml:context") == wanted:
            return dict(attrs)
    raise KeyError(
        f"No activity or entity named {name!r}. Use list_activities() / list_entities() to see valid names."
    )


def _upstream_record(doc: dict[str, Any], name: str) -> dict[str, Any] | None:
    """Upstream's record names: ``<label>//<context>`` (a dataset, param, ... in a context) and
    ``<experiment>_GR<rank>_<N>`` (the run of one process: here that rank, with the job's
    attributes such as ``run_id``)."""
    label, sep, context = name.rpartition("//")
    if sep and label:
        wanted = context_name(context)
        for attrs in doc.get("entity", {}).values():
            if unwrap(attrs.get("yprov4ml:name")) == label and attrs.get("yprov4ml:context") == wanted:
                return dict(attrs)
    match = re.fullmatch(r".+_GR(\d+)_\d+", name)
    if match is not None:
        activities = doc.get("activity", {})
        job: dict[str, Any] = next(
            (a for a in activities.values() if unwrap(a.get("prov:type")) == "yprov4ml:Job"), {}
        )
        for attrs in activities.values():
            if unwrap(attrs.get("prov:type")) == "yprov4ml:RankProcess" and unwrap(
                attrs.get("yprov4ml:rank")
            ) == int(match[1]):
                return {**job, **attrs}
    return None


# upstream's attribute names for what records here call otherwise
_UPSTREAM_ATTRIBUTES = {"prov:startedAtTime": "prov:startTime", "prov:endedAtTime": "prov:endTime"}
# upstream's dataset statistics, yprov:<label>_stat_<what>
_UPSTREAM_DATASET_STATS = {
    "batch_size": "batch_size",
    "num_workers": "num_workers",
    "total_steps": "length",
    "total_samples": "dataset_length",
}


def get_parameter(source: Source, name: str, param: str, unwrap: bool = True) -> Any:
    """One attribute of a record; ``param`` with or without its prefix (upstream's ``yprov:`` too,
    and upstream's names for times and dataset statistics)."""
    record = _record(load_document(source), name)
    keys = [param, *(p + param for p in _PREFIXES)]
    if param in _UPSTREAM_ATTRIBUTES:
        keys.append(_UPSTREAM_ATTRIBUTES[param])
    if param.startswith("yprov:"):
        keys.append("yprov4ml:" + param[len("yprov:") :])
        stat = re.fullmatch(r"yprov:.+_stat_(\w+)", param)
        if stat is not None and stat[1] in _UPSTREAM_DATASET_STATS:
            keys.append("yprov4ml:" + _UPSTREAM_DATASET_STATS[stat[1]])
    for key in keys:
        if key in record:
            return _unwrap(record[key]) if unwrap else record[key]
    return None


_unwrap = unwrap


def list_parameters(data: Source, name: str | None = None, unwrap: bool = True) -> dict[str, Any]:
    """The attributes of one record, or (``name=None``) of all activities and entities merged."""
    doc = load_document(data)
    if name:
        record = _record(doc, name)
        return dict(record) if not unwrap else {k: _unwrap(v) for k, v in record.items()}
    merged: dict[str, Any] = {}
    for record in (*doc.get("activity", {}).values(), *doc.get("entity", {}).values()):
        merged.update({k: _unwrap(v) if unwrap else v for k, v in record.items()})
    return merged


def _metric_rows(doc: dict[str, Any], context: str | None, source: str | None) -> dict[str, dict[str, Any]]:
    wanted = None if context is None else context_name(context)
    rows = {}
    for ident, attrs in entities_of_type(doc, "yprov4ml:MetricSeries"):
        if wanted is not None and attrs.get("yprov4ml:context") != wanted:
            continue
        if source is not None and attrs.get("yprov4ml:source") != source:
            continue
        rows[ident] = {k: _unwrap(v) for k, v in attrs.items()}
    return rows


def _metric_path(run_dir: Path | None, attrs: dict[str, Any]) -> str:
    """The series' CSV file when metrics_file_type='csv' wrote one, else its HDF5 dataset."""
    rank = attrs.get("yprov4ml:rank")
    if run_dir is not None and rank is not None:
        from .._compat._outputs import csv_path

        path = csv_path(
            run_dir, str(attrs.get("yprov4ml:name")), str(attrs.get("yprov4ml:context")), int(rank)
        )
        if path.is_file():
            return str(path)
    location = attrs.get("prov:location")
    h5path = attrs.get("yprov4ml:h5path")
    return f"{location}#{h5path}" if location and h5path else str(location or "")


def _run_dir_or_none(data: Source) -> Path | None:
    try:
        return run_dir_of(data)
    except FileNotFoundError:
        return None


def list_metrics(data: Source, context: str | None = None, source: str | None = None) -> Any:
    """A DataFrame of the metric series (one row per series entity): label, context, source, csv_path, ..."""
    pd = pandas()
    doc = load_document(data)
    rows = _metric_rows(doc, context, source)
    if not rows:
        return pd.DataFrame()
    run_dir = _run_dir_or_none(data if not isinstance(data, dict) else doc)
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index.name = "metric_entity"
    df.insert(0, "label", df.pop("yprov4ml:name"))
    df.insert(1, "context", df.pop("yprov4ml:context"))
    df.insert(2, "source", df.pop("yprov4ml:source") if "yprov4ml:source" in df.columns else None)
    df.insert(3, "csv_path", [_metric_path(run_dir, rows[i]) for i in df.index])
    return df


def list_metric_paths(
    data: Source, context: str | None = None, source: str | None = None, file_type: str | None = None
) -> dict[str, str]:
    """``{metric entity: file}``: the CSV file where written, else ``rank file#dataset``.

    ``file_type`` (``"csv"``, ``"h5"``) keeps only those files.
    """
    doc = load_document(data)
    run_dir = _run_dir_or_none(data if not isinstance(data, dict) else doc)
    result = {}
    for ident, attrs in _metric_rows(doc, context, source).items():
        path = _metric_path(run_dir, attrs)
        if not path:
            continue
        suffix = path.split("#", 1)[0].rsplit(".", 1)[-1]
        if file_type is None or file_type.lstrip(".") == suffix:
            result[ident] = path
    return result


def get_metric(
    data: Source, name: str | None = None, context: str | None = None, source: str | None = None
) -> Any:
    """The points of metric ``name`` (in ``context``, default: any) of every rank, as a DataFrame.

    Columns ``epoch``, ``value``, ``timestep`` (ms, as upstream's CSV) and ``rank``, ordered
    by rank then position, and ``context`` only when no context was asked for (a text column
    would break upstream's ``df.groupby("epoch").mean()``).  None when there is no such metric,
    as upstream.
    """
    pd = pandas()
    from .._reader import load_run

    doc = load_document(data)
    run = load_run(run_dir_of(data if not isinstance(data, dict) else doc))
    wanted = None if context is None else context_name(context)
    frames = []
    for metric, ctx, rank in run.series_keys():
        if metric != name or (wanted is not None and ctx != wanted):
            continue
        series = run.series(metric, ctx, rank)
        columns = {
            "epoch": series.step,
            "value": series.value,
            "timestep": series.time_ns // 1_000_000,
            "rank": rank,
        }
        if wanted is None:
            columns["context"] = ctx
        frames.append(pd.DataFrame(columns))
    if not frames:
        return None
    return pd.concat(frames, ignore_index=True)


def list_runs_in_proj(path: str | os.PathLike[str]) -> list[Path]:
    """The run directories in a project (save) directory."""
    proj_dir = Path(path)
    return sorted(proj_dir / f for f in os.listdir(proj_dir) if (proj_dir / f).is_dir())


def list_provjson_in_proj(path: str | os.PathLike[str]) -> list[Path]:
    """The PROV document of each run in a project directory (runs without one are skipped)."""
    jsons = []
    for run in list_runs_in_proj(path):
        found = sorted(run.glob("prov_*.json"))
        if found:
            jsons.append(found[0])
    return jsons
