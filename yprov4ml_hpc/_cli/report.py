"""``yprov4ml-hpc report RUN_DIR``: one self-contained HTML file (RUN_DIR/report.html).

Figures need the ``plot`` extra; without it the report is written anyway, without them,
and a warning says how to get them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .._output import write_replacing
from .._progress import Progress
from .._report import build_report
from .._summaryfile import load_summary, open_run
from ._text import warn

__all__ = ["run", "setup_parser"]

REPORT_NAME = "report.html"


def setup_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (prov/<experiment>_<run_id>)")
    parser.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        help=f"file to write, or a folder to write {REPORT_NAME} into (default RUN_DIR/{REPORT_NAME})",
    )
    parser.add_argument(
        "--metric",
        action="append",
        metavar="NAME",
        help="figures of these metrics only (a name or a glob; repeatable)",
    )
    parser.add_argument("--no-figures", action="store_true", help="leave the figures out (faster)")


def run(args: argparse.Namespace) -> int:
    data = open_run(args.run_dir)
    for name, why in data.problems:
        warn("report", f"damaged rank file {name} left out: {why}")
    with Progress(len(data.ranks), "reading ranks") as bar:
        summary = load_summary(args.run_dir, data, progress=bar)
    report = build_report(
        data.run_dir, metrics=args.metric, with_figures=not args.no_figures, run=data, summary=summary
    )
    for message in report.warnings:
        warn("report", message)
    if args.output:
        out = Path(args.output)
        if out.is_dir():
            out = out / REPORT_NAME
    else:
        out = data.run_dir / REPORT_NAME
    out.parent.mkdir(parents=True, exist_ok=True)
    write_replacing(out, report.html)
    print(f"{out}  ({len(report.html.encode('utf-8')) / 1024:.0f} KiB, {report.figures} figures)")
    return 0
