"""The figures, drawn with matplotlib's object API on an Agg canvas.

Only imported by :mod:`yprov4ml_hpc._plots` after it checked that matplotlib is there.  No
pyplot: it keeps global state (a user's interactive backend, open figures) that a library
must not touch, and Agg needs no display on a login node.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib import colormaps, rc_context
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .._reader import Series
from ._data import (
    Band,
    band_over_steps,
    band_over_time,
    cumulative_sum_over_time,
    in_logging_order,
    log2_ratio_to_median,
    rate_of,
    step_starts,
    steps_repeat,
)

__all__ = ["energy_figure", "hardware_figure", "heatmap_figure", "metric_figure"]

WIDTH_IN = 8.0
STYLE: dict[Any, Any] = {  # Any keys: matplotlib types rc keys as a Literal union
    "font.size": 9.5,
    "axes.titlesize": 11,
    "axes.labelsize": 9.5,
    "legend.fontsize": 8.5,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
MEDIAN_COLOR = "#1f5fa8"


def _figure(height_in: float, rows: int = 1, sharex: bool = False) -> tuple[Figure, list[Any]]:
    fig = Figure(figsize=(WIDTH_IN, height_in), layout="constrained")
    axes = fig.subplots(rows, 1, sharex=sharex, squeeze=False)[:, 0]
    return fig, list(axes)


def _png(fig: Figure, dpi: int) -> bytes:
    buffer = io.BytesIO()
    # A fixed canvas (no bbox_inches="tight"): every PNG of a kind has the same size.
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _maybe_log(ax: Any, values: Sequence[np.ndarray]) -> None:
    """Loss curves that fall over decades read best on a log axis."""
    finite = [v[np.isfinite(v)] for v in values]
    finite = [v for v in finite if v.size]
    if not finite:
        return
    low = min(float(v.min()) for v in finite)
    high = max(float(v.max()) for v in finite)
    if low > 0 and high / low > 100:
        ax.set_yscale("log")


def _draw_band(ax: Any, band: Band, label: str = "median") -> None:
    if band.count > 1:
        ax.fill_between(
            band.x,
            band.low,
            band.high,
            color=MEDIAN_COLOR,
            alpha=0.13,
            lw=0,
            label=f"min\u2013max of {band.count}",
        )
        ax.fill_between(band.x, band.q25, band.q75, color=MEDIAN_COLOR, alpha=0.3, lw=0, label="25\u201375 %")
    if band.count < 3 or band.present is None:
        ax.plot(band.x, band.median, color=MEDIAN_COLOR, lw=1.6, label=label if band.count > 1 else None)
        return
    # Where most series have ended (a straggler's tail, a killed rank), the "median" is one or
    # two series: drawn dashed, so it does not read as the job's typical value.
    few = band.present < math.ceil(band.count / 2)
    edge = few | np.r_[few[1:], False] | np.r_[False, few[:-1]]  # overlap by a point: no gap
    ax.plot(band.x, np.where(~few, band.median, np.nan), color=MEDIAN_COLOR, lw=1.6, label=label)
    if few.any():
        ax.plot(
            band.x,
            np.where(edge, band.median, np.nan),
            color=MEDIAN_COLOR,
            lw=1.1,
            ls="--",
            label=f"fewer than half of the {band.count} left",
        )


def _empty(ax: Any, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def metric_figure(name: str, context: str, series: Sequence[Series], per_rank_max: int, dpi: int) -> bytes:
    """One metric over steps: a line per rank for small jobs, else median and bands.

    Where steps repeat (every batch logged with ``step=epoch``) the points are drawn in the
    order each rank logged them, with ticks where each step begins: over the steps themselves
    they would stack into vertical bars.
    """
    repeated = steps_repeat(series)
    longest = max(series, key=len, default=None)
    if repeated:
        series = [in_logging_order(s) for s in series]
    with rc_context(STYLE):
        fig, (ax,) = _figure(4.2)
        ranks = sorted({s.rank for s in series})
        if len(ranks) <= per_rank_max:
            for s in sorted(series, key=lambda s: s.rank):
                values = np.where(np.isfinite(s.value), s.value, np.nan)
                ax.plot(
                    s.step, values, lw=1.3, label=f"rank {s.rank}", marker="o" if len(s) <= 30 else None, ms=3
                )
            if len(ranks) > 1:
                ax.legend(loc="best", frameon=False)
        else:
            band = band_over_steps(series)
            _draw_band(ax, band)
            ax.legend(loc="best", frameon=False)
        _maybe_log(ax, [s.value for s in series])
        title = f"{_short(name)}  [{context}]"
        where = f"{len(ranks)} rank" + ("s" if len(ranks) != 1 else "")
        ax.set_title(f"{title}  \u2014  {where}", loc="left")
        ax.set_ylabel(_short(name.rsplit("/", 1)[-1], 30))
        if repeated and longest is not None:
            ticks, labels = step_starts(longest.step)
            ax.set_xticks(ticks, labels)
            ax.set_xlabel("step  (steps repeat: every point drawn in logging order)")
        else:
            ax.set_xlabel("step")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        return _png(fig, dpi)


def _time_panel(
    ax: Any, series: Sequence[Series], t0_ns: int, ylabel: str, per_line_max: int, shown: set[tuple[str, ...]]
) -> None:
    """One panel over time; a legend only where it says something the panels above did not."""
    if len(series) <= per_line_max:
        for s in series:
            ax.plot(
                (s.time_ns - t0_ns) / 1e9,
                np.where(np.isfinite(s.value), s.value, np.nan),
                lw=1.2,
                label=_short(f"r{s.rank} {s.name.split('/')[0]}", 24),
            )
    else:
        _draw_band(ax, band_over_time(series, t0_ns))
    labels = tuple(ax.get_legend_handles_labels()[1])
    if len(labels) > 1 and labels not in shown:
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
        shown.add(labels)
    ax.set_ylabel(ylabel)


def hardware_figure(
    main: tuple[str, Sequence[Series]] | None,
    panels: Sequence[tuple[str, Sequence[Series]]],
    t0_ns: int,
    dpi: int,
    per_line_max: int = 4,
) -> bytes:
    """The loss and the hardware (GPU utilisation and power, or CPU) on one time axis."""
    rows = len(panels) + (1 if main is not None else 0)
    with rc_context(STYLE):
        fig, axes = _figure(1.2 + 2.0 * rows, rows, sharex=True)
        index = 0
        shown: set[tuple[str, ...]] = set()
        if main is not None:
            name, series = main
            _time_panel(axes[0], series, t0_ns, _short(name.rsplit("/", 1)[-1], 24), per_line_max, shown)
            _maybe_log(axes[0], [s.value for s in series])
            axes[0].set_title(f"{_short(name)} next to the hardware", loc="left")
            index = 1
        for ax, (label, series) in zip(axes[index:], panels, strict=True):
            _time_panel(ax, series, t0_ns, label, per_line_max, shown)
        if main is None:
            axes[0].set_title("hardware over time", loc="left")
        axes[-1].set_xlabel("seconds since the job started")
        return _png(fig, dpi)


def energy_figure(
    energy: dict[str, Sequence[Series]],
    emissions: Sequence[Series],
    t0_ns: int,
    dpi: int,
    no_emissions: str = "no emissions series",
) -> bytes:
    """Cumulative energy by source, and the emission rate (or, without it, the power)."""
    with rc_context(STYLE):
        fig, (top, bottom) = _figure(5.6, 2, sharex=True)
        totals: list[tuple[np.ndarray, np.ndarray]] = []
        for label, series in energy.items():
            t, total = cumulative_sum_over_time(series, t0_ns)
            if t.size:
                top.plot(t, total / 1e3, lw=1.5, label=f"{label} \u00b7 {len(series)} series")
                totals.append((t, total))
        top.set_ylabel("energy (kJ)")
        top.set_title("energy and emissions over time", loc="left")
        if totals:
            top.legend(loc="upper left", frameon=False)
        else:
            _empty(top, "no energy series")
        if emissions:
            t, kg = cumulative_sum_over_time(emissions, t0_ns)
            mid, rate = rate_of(t, kg)
            bottom.plot(mid, rate * 1e3 * 3600.0, color="#2e7d32", lw=1.5)
            bottom.set_ylabel("emission rate (g CO\u2082e/h)")
            # In the title, not on the axes: a label inside would sit on the curve's plateau.
            bottom.set_title(
                f"codecarbon, all nodes: {kg[-1] * 1e3:.3g} g CO\u2082e in total", loc="left", fontsize=9.5
            )
        elif totals:
            t, total = totals[0]
            mid, rate = rate_of(t, total)
            bottom.plot(mid, rate, color="#b2582b", lw=1.2)
            bottom.set_ylabel(f"power (W)\nfrom {next(iter(energy))}")
        else:
            _empty(bottom, f"no emissions: {no_emissions}")
        bottom.set_xlabel("seconds since the job started")
        return _png(fig, dpi)


def _fmt(value: float) -> str:
    """Short cell labels: 3 significant digits, k/M instead of exponents."""
    if not math.isfinite(value):
        return "n/a"
    for suffix, scale in (("M", 1e6), ("k", 1e3)):
        if abs(value) >= 10 * scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


#: Colour scale of the heat map: at least +-10 % (a 3 % difference must not look like a hot
#: spot), at most 2x either way (beyond that a cell is simply saturated).
HEATMAP_MIN_SPAN = math.log2(1.10)
HEATMAP_MAX_SPAN = 1.0


def _ratio_label(log2_ratio: float) -> str:
    ratio = 2.0**log2_ratio
    return f"{ratio:.2g}\u00d7" if ratio >= 1.5 or ratio <= 0.67 else f"{(ratio - 1) * 100:+.0f} %"


def heatmap_figure(
    rows: Sequence[tuple[str, Sequence[float]]], ranks: Sequence[int], hosts: Sequence[str], dpi: int
) -> bytes:
    """Per-rank quantities as colour relative to the median over ranks (one row each).

    The colour scale spans the largest deviation (within ``HEATMAP_MIN_SPAN`` and
    ``HEATMAP_MAX_SPAN``), so a small job's few-percent differences show; the median is
    white, a missing value dark grey with "n/a".
    """
    matrix = np.array([np.asarray(values, dtype=np.float64) for _, values in rows])
    ratio = log2_ratio_to_median([values for _, values in rows])
    finite = np.abs(ratio[np.isfinite(ratio)])
    span = float(np.clip(finite.max() if finite.size else 0.0, HEATMAP_MIN_SPAN, HEATMAP_MAX_SPAN))
    with rc_context(STYLE):
        fig, (ax,) = _figure(1.6 + 0.55 * len(rows))
        cmap = _colormap()
        image = ax.imshow(
            np.clip(ratio, -span, span),
            aspect="auto",
            cmap=cmap,
            interpolation="nearest",
            norm=TwoSlopeNorm(vmin=-span, vcenter=0.0, vmax=span),
        )
        ax.grid(False)
        ax.set_yticks(range(len(rows)), [label for label, _ in rows])
        n = len(ranks)
        step = max(1, math.ceil(n / 32))
        ax.set_xticks(range(0, n, step), [str(r) for r in ranks[::step]])
        ax.set_xlabel("rank")
        if n <= 24:
            for i in range(matrix.shape[0]):
                for j in range(n):
                    strong = not np.isfinite(ratio[i, j]) or abs(ratio[i, j]) > 0.6 * span
                    ax.text(
                        j,
                        i,
                        _fmt(matrix[i, j]),
                        ha="center",
                        va="center",
                        fontsize=7.5,
                        color="white" if strong else "black",
                    )
        # Node boundaries: ranks are usually packed per node, so a line shows a slow node.
        starts = [0] + [j for j in range(1, n) if hosts[j] != hosts[j - 1]]
        for j in starts[1:]:
            ax.axvline(j - 0.5, color="black", lw=1.0)
        if 1 < len(starts) <= 16:  # name the nodes above their columns while they fit
            ends = [*starts[1:], n]
            top = ax.secondary_xaxis("top")
            top.set_xticks(
                [(a + b - 1) / 2 for a, b in zip(starts, ends, strict=True)],
                [_short(hosts[a], 14) for a in starts],
            )
            top.tick_params(length=0, labelsize=8.5)
            top.spines["top"].set_visible(False)
        bar = fig.colorbar(image, ax=ax, ticks=[-span, 0, span], shrink=0.9)
        bar.ax.set_yticklabels([_ratio_label(-span), "median", _ratio_label(span)])
        nodes = len(dict.fromkeys(hosts))
        ax.set_title(
            f"per rank, relative to the median  \u2014  {n} ranks on {nodes} node"
            + ("s" if nodes != 1 else ""),
            loc="left",
        )
        return _png(fig, dpi)


def _colormap() -> Any:
    # The median is white; ranks with no value (missing, still running) are dark grey, which
    # no ratio maps to (coolwarm's light-grey middle was indistinguishable from "no value").
    return colormaps["RdBu_r"].with_extremes(bad="0.45")
