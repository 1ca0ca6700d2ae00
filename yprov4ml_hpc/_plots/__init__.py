"""Figures of a run: each metric across ranks, hardware next to the loss, energy, a rank map.

matplotlib (extra ``plot``) is imported only when a figure is drawn; without it
:func:`require_matplotlib` raises :class:`MissingDependencyError` naming the extra.  The
figures are PNG bytes, so the report embeds the same images that ``plot`` writes.
"""

from __future__ import annotations

import fnmatch
import functools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import ConfigError, MissingDependencyError
from .._output import output_folder, write_replacing
from .._progress import Progress
from .._reader import RunData, Series
from .._report._sampling import carbon_note, system_note
from .._summaryfile import SAMPLER_CONTEXTS
from ._data import log2_ratio_to_median, safe_filename, steps_repeat

__all__ = [
    "PLOT_EXTRA_HINT",
    "FigureSet",
    "MissingDependencyError",
    "PlotFigure",
    "build_figures",
    "require_matplotlib",
    "select_metrics",
    "write_figures",
]

PLOT_EXTRA_HINT = 'pip install "yprov4ml-hpc[plot]"'
DEFAULT_DPI = 110
DEFAULT_PER_RANK_MAX = 4  # above this many ranks, one line each turns into spaghetti
DEFAULT_MAX_METRICS = 24
#: Below this spread (log2 of 1.05: every rank within 5 % of the median on every row) a heat
#: map shows one flat colour; it is left out and a note says why.
HEATMAP_EVEN = math.log2(1.05)

_GPU_UTIL = re.compile(r"^gpu\d+/utilization_pct$")
_GPU_POWER = re.compile(r"^gpu\d+/power_w$")
_ENERGY_GROUPS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("GPUs (NVML)", re.compile(r"^gpu\d+/energy_j$")),
    ("nodes (codecarbon)", re.compile(r"^codecarbon/energy_j$")),
    ("CPU packages (RAPL)", re.compile(r"^rapl/.+_energy_j$")),
)
_EMISSIONS = "codecarbon/emissions_kg"


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(
            f"plots need matplotlib, which is not installed ({exc}); install it with: {PLOT_EXTRA_HINT}"
        ) from exc


@dataclass
class PlotFigure:
    """One drawn figure: file stem, a title and a sentence for the report, PNG bytes."""

    stem: str
    title: str
    caption: str
    png: bytes


@dataclass
class FigureSet:
    figures: list[PlotFigure] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "what: why", for the user


def select_metrics(
    run: RunData, patterns: Sequence[str] | None, max_metrics: int = DEFAULT_MAX_METRICS
) -> tuple[list[tuple[str, str]], list[str]]:
    """(name, context) pairs to draw: the user's metrics, or those matching the patterns.

    A pattern matches a metric name exactly or as a shell glob (``'train/*'``); one that
    matches nothing is an error listing what there is.
    """
    keys = sorted({(name, ctx) for name, ctx, _ in run.series_keys()}, key=lambda k: (k[1], k[0]))
    notes: list[str] = []
    if patterns:
        chosen: list[tuple[str, str]] = []
        for pattern in patterns:
            hits = [k for k in keys if k[0] == pattern or fnmatch.fnmatchcase(k[0], pattern)]
            if not hits:
                names = sorted({k[0] for k in keys if k[1] not in SAMPLER_CONTEXTS}) or sorted(
                    {k[0] for k in keys}
                )
                shown = ", ".join(names[:12]) + (" ..." if len(names) > 12 else "")
                raise ConfigError(f"no metric matches {pattern!r}; metrics of this run: {shown}")
            chosen += [k for k in hits if k not in chosen]
        return chosen, notes
    user = [k for k in keys if k[1] not in SAMPLER_CONTEXTS]
    if len(user) > max_metrics:
        notes.append(f"{len(user) - max_metrics} more metrics: not drawn (choose them with --metric NAME)")
        user = user[:max_metrics]
    return user, notes


def _main_metric(keys: Sequence[tuple[str, str]]) -> tuple[str, str] | None:
    """The curve people look for first: a training loss if there is one."""
    for test in (
        lambda n, c: "loss" in n.lower() and c == "training",
        lambda n, c: "loss" in n.lower(),
        lambda n, c: True,
    ):
        for name, ctx in keys:
            if test(name, ctx):
                return name, ctx
    return None


class _SeriesCache:
    """Series of every rank for one (name, context), read once per figure set."""

    def __init__(self, run: RunData) -> None:
        self.run = run
        self._ranks: dict[tuple[str, str], list[int]] = {}
        for name, ctx, rank in run.series_keys():
            self._ranks.setdefault((name, ctx), []).append(rank)

    def get(self, name: str, ctx: str) -> list[Series]:
        return [self.run.series(name, ctx, r) for r in self._ranks.get((name, ctx), [])]

    def matching(self, ctx: str, pattern: re.Pattern[str]) -> list[Series]:
        out: list[Series] = []
        for name, context in self._ranks:
            if context == ctx and pattern.match(name):
                out += self.get(name, ctx)
        return out

    def sampled(self, ctx: str, pattern: re.Pattern[str]) -> list[Series]:
        """Sampler series from the background thread (context ``ctx``) or from
        ``log_system_metrics(context=...)`` calls (the user's contexts): whichever context
        holds the most points (a short run's thread has one sample; a per-batch call has many)."""
        contexts = {c for n, c in self._ranks if pattern.match(n) and (c == ctx or c not in SAMPLER_CONTEXTS)}
        if not contexts:
            return []
        found = {c: self.matching(c, pattern) for c in sorted(contexts)}
        return max(found.items(), key=lambda item: (sum(len(s) for s in item[1]), item[0] == ctx))[1]


def build_figures(
    run: RunData,
    summary: dict[str, Any],
    metrics: Sequence[str] | None = None,
    *,
    per_rank_max: int = DEFAULT_PER_RANK_MAX,
    dpi: int = DEFAULT_DPI,
    max_metrics: int = DEFAULT_MAX_METRICS,
) -> FigureSet:
    """Draw every figure of the run (PNG bytes); what cannot be drawn is listed in ``skipped``."""
    require_matplotlib()
    from . import _figures as F

    keys, notes = select_metrics(run, metrics, max_metrics)
    out = FigureSet(skipped=notes)
    cache = _SeriesCache(run)
    t0 = min((r.start_ns for r in run.ranks if r.start_ns), default=0)
    jobs: list[tuple[str, Callable[[], PlotFigure | None]]] = []
    for name, ctx in keys:
        jobs.append((name, functools.partial(_metric, F, cache, name, ctx, per_rank_max, dpi)))
    # Short and tall figures alternate so that the report's two-column grid stays tidy.
    jobs.append(("ranks", lambda: _heatmap(F, cache, summary, dpi)))
    jobs.append(("hardware", lambda: _hardware(F, run, cache, keys, t0, dpi)))
    jobs.append(("energy", lambda: _energy(F, run, cache, t0, dpi)))
    with Progress(len(jobs), "plotting") as bar:
        for what, job in jobs:
            try:
                figure = job()
            except _Skip as skip:
                out.skipped.append(f"{what}: {skip}")
            else:
                if figure is not None:
                    out.figures.append(figure)
            bar.update()
    return out


def _origin(t0: int, series: Sequence[Series]) -> int:
    """Time zero of a time axis: the job's start, or an earlier sample (clocks of nodes differ)."""
    firsts = [int(s.time_ns[0]) for s in series if len(s)]
    return min([t0, *firsts]) if t0 else min(firsts, default=0)


class _Skip(Exception):
    """A figure with nothing to show (no GPU series, ...): reported, not an error."""


def _metric(F: Any, cache: _SeriesCache, name: str, ctx: str, per_rank_max: int, dpi: int) -> PlotFigure:
    series = cache.get(name, ctx)
    if not any(len(s) for s in series):
        raise _Skip("no points logged")
    ranks = len({s.rank for s in series})
    how = "one line per rank" if ranks <= per_rank_max else "median over ranks, 25-75 % and min-max bands"
    over = (
        "in logging order (its steps repeat, e.g. every batch logged with step=epoch; "
        "ticks mark where each step begins)"
        if steps_repeat(series)
        else "over steps"
    )
    return PlotFigure(
        safe_filename("metric", ctx, name),
        f"{name} [{ctx}]",
        f"{name} in context {ctx} {over}, {ranks} rank(s): {how}.",
        F.metric_figure(name, ctx, series, per_rank_max, dpi),
    )


def _hardware(
    F: Any, run: RunData, cache: _SeriesCache, keys: Sequence[tuple[str, str]], t0: int, dpi: int
) -> PlotFigure:
    panels = [
        ("GPU utilisation (%)", cache.sampled("gpu", _GPU_UTIL)),
        ("GPU power (W)", cache.sampled("gpu", _GPU_POWER)),
    ]
    what = "GPU utilisation and power"
    if not any(series for _, series in panels):
        panels = [
            ("process CPU (%, 100 = one core)", cache.sampled("system", re.compile(r"^process/cpu_pct$"))),
            ("node CPU (%, all cores)", cache.sampled("system", re.compile(r"^node/cpu_pct$"))),
        ]
        what = "CPU use"
    panels = [(label, series) for label, series in panels if series]
    if not panels:
        raise _Skip(f"no GPU or CPU series: {system_note(run)}")
    main_key = _main_metric(keys)
    main = (main_key[0], cache.get(*main_key)) if main_key else None
    t0 = _origin(t0, [s for _, series in panels for s in series] + (list(main[1]) if main else []))
    caption = f"{what} over time" + (f", below {main_key[0]} on the same time axis." if main_key else ".")
    return PlotFigure(
        "hardware", f"{what} next to the loss", caption, F.hardware_figure(main, panels, t0, dpi)
    )


def _energy(F: Any, run: RunData, cache: _SeriesCache, t0: int, dpi: int) -> PlotFigure:
    groups = {label: cache.sampled("energy", pattern) for label, pattern in _ENERGY_GROUPS}
    groups = {label: series for label, series in groups.items() if series}
    emissions = cache.sampled("energy", re.compile(f"^{re.escape(_EMISSIONS)}$"))
    if not groups and not emissions:
        raise _Skip(f"no energy series (no GPU energy counter or RAPL here; {carbon_note(run)})")
    t0 = _origin(t0, [s for series in groups.values() for s in series] + emissions)
    caption = "Cumulative energy by source (summed over ranks and GPUs) and " + (
        "the emission rate from codecarbon." if emissions else "the power it implies."
    )
    return PlotFigure(
        "energy",
        "energy and emission rate",
        caption,
        F.energy_figure(groups, emissions, t0, dpi, no_emissions=carbon_note(run)),
    )


def _gpu_energy_by_rank(cache: _SeriesCache) -> dict[int, float]:
    """Each rank's own GPUs' energy (last value of its cumulative counters), if any."""
    out: dict[int, float] = {}
    for series in cache.matching("energy", _ENERGY_GROUPS[0][1]):
        finite = series.value[np.isfinite(series.value)]
        if finite.size:
            out[series.rank] = out.get(series.rank, 0.0) + float(finite[-1])
    return out


def _heatmap(F: Any, cache: _SeriesCache, summary: dict[str, Any], dpi: int) -> PlotFigure:
    ranks = sorted(summary.get("ranks", []), key=lambda r: r["rank"])
    if len(ranks) < 2:
        raise _Skip("a single rank: nothing to compare it with")

    def num(value: Any) -> float:
        return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else math.nan

    wall = [num(r.get("wall_time_s")) for r in ranks]
    rate = [num(r.get("steps")) / w if w and w > 0 else math.nan for r, w in zip(ranks, wall, strict=True)]
    rows: list[tuple[str, Sequence[float]]] = [("wall time (s)", wall), ("steps / s", rate)]
    # Per-rank GPU counters compare like with like; summary's energy_j gives a node leader its
    # whole node's codecarbon figure, which would paint every leader as a hot spot.
    gpu = _gpu_energy_by_rank(cache)
    if gpu:
        rows.append(("GPU energy (kJ)", [gpu.get(int(r["rank"]), math.nan) / 1e3 for r in ranks]))
    else:
        energy = [num(r.get("energy_j")) / 1e3 for r in ranks]
        if any(math.isfinite(e) for e in energy):
            rows.append(("energy (kJ)", energy))
    ratio = log2_ratio_to_median([values for _, values in rows])
    finite = np.abs(ratio[np.isfinite(ratio)])
    if finite.size and finite.max() < HEATMAP_EVEN:
        names = ", ".join(label for label, _ in rows)
        raise _Skip(
            f"every rank within {2**HEATMAP_EVEN - 1:.0%} of the median ({names}): "
            "no rank stands out, no heat map"
        )
    hosts = [str(r.get("host") or "?") for r in ranks]
    caption = (
        "Each cell is a rank's value, coloured by its ratio to the median over ranks "
        "(red above, blue below, white: the median, dark grey: no value; the scale spans the "
        "largest deviation, at least \u00b110 %); black lines separate nodes."
    )
    png = F.heatmap_figure(rows, [int(r["rank"]) for r in ranks], hosts, dpi)
    return PlotFigure("ranks", "ranks at a glance", caption, png)


def write_figures(figures: FigureSet, out_dir: Path) -> list[Path]:
    """Write the PNGs under ``out_dir`` (created; refused if a symlink); names are unique even
    for odd metric names.  Each file is replaced, never written through an existing link."""
    output_folder(out_dir)
    written: list[Path] = []
    used: set[str] = set()
    for fig in figures.figures:
        stem, n = fig.stem, 2
        while stem in used:
            stem, n = f"{fig.stem}_{n}", n + 1
        used.add(stem)
        path = out_dir / f"{stem}.png"
        write_replacing(path, fig.png)
        written.append(path)
    return written
