"""``yprov4ml-hpc plot RUN_DIR``: PNG figures of a run (needs the ``plot`` extra).

Writes into RUN_DIR/plots/ (``-o`` elsewhere): one figure per metric across ranks, the
hardware next to the loss, energy and emission rate, and a per-rank heat map.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .._errors import ConfigError
from .._plots import (
    DEFAULT_DPI,
    DEFAULT_MAX_METRICS,
    DEFAULT_PER_RANK_MAX,
    build_figures,
    require_matplotlib,
    write_figures,
)
from .._progress import Progress
from .._summaryfile import load_summary, open_run
from ._text import warn

__all__ = ["run", "setup_parser"]


def setup_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (prov/<experiment>_<run_id>)")
    parser.add_argument(
        "--metric",
        action="append",
        metavar="NAME",
        help="draw this metric (a name or a glob like 'train/*'; repeatable); "
        "default: every metric of the user's contexts",
    )
    parser.add_argument("-o", "--output", metavar="DIR", help="folder for the PNGs (default RUN_DIR/plots)")
    parser.add_argument(
        "--per-rank-max",
        type=int,
        default=DEFAULT_PER_RANK_MAX,
        metavar="N",
        help=f"one line per rank up to N ranks, median and bands above (default {DEFAULT_PER_RANK_MAX})",
    )
    parser.add_argument("--dpi", type=int, default=DEFAULT_DPI, help=f"resolution (default {DEFAULT_DPI})")
    parser.add_argument(
        "--max-metrics",
        type=int,
        default=DEFAULT_MAX_METRICS,
        metavar="N",
        help=f"draw at most N metrics without --metric (default {DEFAULT_MAX_METRICS})",
    )


def run(args: argparse.Namespace) -> int:
    if args.dpi < 20 or args.dpi > 600:
        raise ConfigError(f"--dpi {args.dpi}: choose between 20 and 600")
    require_matplotlib()  # before reading anything: fail fast with the install line
    data = open_run(args.run_dir)
    for name, why in data.problems:
        warn("plot", f"damaged rank file {name} left out: {why}")
    with Progress(len(data.ranks), "reading ranks") as bar:
        summary = load_summary(args.run_dir, data, progress=bar)
    figures = build_figures(
        data,
        summary.data,
        args.metric,
        per_rank_max=max(args.per_rank_max, 0),
        dpi=args.dpi,
        max_metrics=max(args.max_metrics, 1),
    )
    out_dir = Path(args.output) if args.output else data.run_dir / "plots"
    for path in write_figures(figures, out_dir):
        print(path)
    for note in figures.skipped:
        print(f"not drawn: {note}")
    return 0
