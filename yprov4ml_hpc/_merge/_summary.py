"""summary.json: the job in numbers (DESIGN section 5).

Definitions (documented in the README):

- ``ranks[].steps``: the largest number of points among the rank's own series (sampler
  contexts ``system``/``gpu``/``energy`` excluded); ``bytes``: the rank file's size on disk;
  ``wall_time_s``: start to end, or to the last flush for a rank that died silently.
- ``metrics[].last``: the mean over ranks of each rank's last logged value (in a multi-run
  merge, over the ranks of the latest run that has the series).
- ``stragglers``: a rank whose median time per step (on the job's main series: the non-sampler
  series with the most points) is more than ``factor`` x the median over ranks; or whose wall
  time is more than ``factor`` x the median and at least ``STRAGGLER_MIN_WALL_EXCESS_S`` longer.
- ``energy``: the rule of ``_energy`` (shared with the PROV document): codecarbon's
  whole-machine figure per node where present, else its NVML GPU and RAPL counters; ``total_j``
  sums the nodes.  ``ranks[].energy_j`` is what that rank measured by the same rule.
- Non-finite numbers are written as ``null`` (see ``_stats``).
"""

from __future__ import annotations

import datetime as _dt
import statistics
from typing import Any

from .. import _constants as C
from .._reader import RunData
from ._energy import TOTAL_RULE, energy_figures, job_energy, rank_energy
from ._stats import SeriesAggregate, aggregate_series, json_number

__all__ = ["metric_aggregates", "summarize"]


def _rank_entries(runs: list[RunData], multi: bool) -> list[dict[str, Any]]:
    entries = []
    samplers, energy_context = C.SAMPLER_CONTEXTS, C.ENERGY_CONTEXT
    for run in runs:
        for rank in range(run.world_size):
            meta = run.metas.get(rank)
            entry: dict[str, Any]
            if meta is None:
                entry = {
                    "rank": rank,
                    "host": None,
                    "local_rank": None,
                    "status": C.STATUS_MISSING,
                    "wall_time_s": None,
                    "steps": None,
                    "bytes": None,
                    "energy_j": None,
                }
                if rank in run.damaged:
                    entry["problem"] = run.damaged[rank]
            else:
                attrs = meta.attrs
                # One walk over the rank's series for both numbers (10^6 series at 10^5 ranks).
                steps, measured = 0, False
                for s in meta.series:
                    if s.context not in samplers:  # SeriesMeta.is_sampler, without a call
                        steps = max(steps, s.count)
                    elif s.context == energy_context:
                        measured = True
                entry = {
                    "rank": rank,
                    "host": attrs.host,
                    "local_rank": attrs.local_rank,
                    "status": attrs.merge_status,
                    "wall_time_s": json_number(attrs.wall_time_s),
                    "steps": steps,
                    "bytes": meta.file_bytes,
                    "energy_j": json_number(rank_energy(energy_figures(meta))) if measured else None,
                }
            if multi:
                entry["run_id"] = run.run_id
            entries.append(entry)
    return entries


def metric_aggregates(runs: list[RunData]) -> dict[tuple[str, str], SeriesAggregate]:
    """Every (context, metric) over all ranks of all runs (the graph of a single run uses these
    too: computing them once saves a pass over every rank's series)."""
    return aggregate_series(
        (i, rank, meta.attrs.host, meta) for i, run in enumerate(runs) for rank, meta in run.metas.items()
    )


def _metric_entries(
    runs: list[RunData], multi: bool, aggregates: dict[tuple[str, str], SeriesAggregate] | None
) -> list[dict[str, Any]]:
    aggregates = metric_aggregates(runs) if aggregates is None else aggregates
    out = []
    for agg in aggregates.values():
        entry: dict[str, Any] = {
            "name": agg.name,
            "context": agg.context,
            "count": agg.count,
            "nan_count": agg.nan_count,
            "ranks": len(agg.ranks),
            "min": json_number(agg.min),
            "max": json_number(agg.max),
            "mean": json_number(agg.mean),
            "last": json_number(agg.last),
            "min_rank": agg.min_rank,
            "min_host": agg.min_host,
            "max_rank": agg.max_rank,
            "max_host": agg.max_host,
        }
        if multi:
            entry["min_run_id"] = runs[agg.min_run].run_id if agg.min_rank is not None else None
            entry["max_run_id"] = runs[agg.max_run].run_id if agg.max_rank is not None else None
        out.append(entry)
    return out


def _main_series(run: RunData) -> tuple[str, str] | None:
    totals: dict[tuple[str, str], int] = {}
    samplers = C.SAMPLER_CONTEXTS  # SeriesMeta.is_sampler, without a call per series of every rank
    for meta in run.metas.values():
        for s in meta.series:
            if s.context not in samplers:
                key = (s.context, s.name)
                totals[key] = totals.get(key, 0) + s.count
    if not totals:
        return None
    return min(totals, key=lambda key: (-totals[key], key))


def _stragglers(run: RunData, factor: float, multi: bool) -> list[dict[str, Any]]:
    found: dict[int, list[str]] = {}
    main = _main_series(run)
    if main is not None:
        intervals: dict[int, float] = {}
        context, name = main
        for rank, meta in run.metas.items():
            for s in meta.series:  # the last entry of the main series wins, as it always did
                if (
                    s.name == name
                    and s.context == context
                    and s.stats is not None
                    and s.stats.median_interval_s is not None
                ):
                    intervals[rank] = s.stats.median_interval_s
        if len(intervals) >= 2:
            median = statistics.median(intervals.values())
            for rank, interval in intervals.items():
                if median > 0 and interval > factor * median:
                    found.setdefault(rank, []).append(
                        f"median step interval {interval:.6g} s is {interval / median:.2f}x the median "
                        f"over ranks ({median:.6g} s) on {main[1]!r} ({main[0]})"
                    )
    walls = {r: w for r, m in run.metas.items() if (w := m.attrs.wall_time_s) is not None}
    if len(walls) >= 2:
        median = statistics.median(walls.values())
        for rank, wall in walls.items():
            if median > 0 and wall > factor * median and wall - median >= C.STRAGGLER_MIN_WALL_EXCESS_S:
                found.setdefault(rank, []).append(
                    f"wall time {wall:.3f} s is {wall / median:.2f}x the median over ranks ({median:.3f} s)"
                )
    out = []
    for rank in sorted(found):
        entry: dict[str, Any] = {
            "rank": rank,
            "host": run.metas[rank].attrs.host,
            "reason": "; ".join(found[rank]),
        }
        if multi:
            entry["run_id"] = run.run_id
        out.append(entry)
    return out


def _energy(runs: list[RunData]) -> dict[str, Any]:
    per_node: dict[str, float] = {}
    emissions: float | None = None
    methods: dict[str, set[str]] = {}
    for run in runs:
        energy = job_energy(run)
        for name, found in energy.series_methods.items():
            methods.setdefault(name, set()).update(found)
        for host, node in energy.nodes.items():
            if node.energy_j is not None:
                per_node[host] = per_node.get(host, 0.0) + node.energy_j
            if node.emissions_kg is not None:
                emissions = (emissions or 0.0) + node.emissions_kg
    method_text = {name: ", ".join(sorted(found)) for name, found in sorted(methods.items())}
    if per_node:
        method_text["total_j"] = TOTAL_RULE
    return {
        "total_j": json_number(sum(per_node.values())) if per_node else None,
        "per_node_j": {host: json_number(v) for host, v in sorted(per_node.items())},
        "emissions_kg": json_number(emissions),
        "methods": method_text,
    }


def _collector(runs: list[RunData], finalize_time_s: float | None) -> dict[str, Any]:
    metas = [m.attrs for run in runs for m in run.metas.values()]
    return {
        "log_calls": sum(a.log_calls for a in metas),
        "flushes": sum(a.flushes for a in metas),
        "flush_time_s": float(sum(a.flush_time_s for a in metas)),
        "finalize_time_s": None if finalize_time_s is None else round(finalize_time_s, 6),
        "bytes_written": sum(a.bytes_written for a in metas),
    }


def summarize(
    runs: list[RunData],
    *,
    generated_by: str,
    straggler_factor: float = C.DEFAULT_STRAGGLER_FACTOR,
    finalize_time_s: float | None = None,
    aggregates: dict[tuple[str, str], SeriesAggregate] | None = None,
) -> dict[str, Any]:
    """The summary of one run, or of several runs merged in the given order (``aggregates``:
    ``metric_aggregates(runs)`` if the caller has it already)."""
    multi = len(runs) > 1
    first = runs[0]
    summary: dict[str, Any] = {
        "schema": C.SUMMARY_SCHEMA,
        "schema_version": C.SUMMARY_SCHEMA_VERSION,
        "run_id": first.run_id if not multi else "..".join((first.run_id, runs[-1].run_id)),
        "experiment": first.experiment,
        "world_size": max(run.world_size for run in runs),
        "generated_by": generated_by,
        "generated_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds"),
        "ranks": _rank_entries(runs, multi),
        "metrics": _metric_entries(runs, multi, aggregates),
        "stragglers": [s for run in runs for s in _stragglers(run, straggler_factor, multi)],
        "energy": _energy(runs),
        "collector": _collector(runs, finalize_time_s),
        "problems": [
            {"file": name, "reason": why, **({"run_id": run.run_id} if multi else {})}
            for run in runs
            for name, why in run.problems
        ],
    }
    if multi:
        summary["runs"] = [
            {
                "run_id": r.run_id,
                "experiment": r.experiment,
                "world_size": r.world_size,
                "run_dir": str(r.run_dir),
            }
            for r in runs
        ]
    return summary
