"""``yprov4ml-hpc graph RUN_DIR [--svg] [--detail auto|node|rank] [--node HOST] [--ranks A-B]``.

Draws the job from its rank files as graph.dot (and graph.svg where Graphviz's ``dot`` is
installed): ranks collapsed into their node, and into groups with counts and status tallies
when there are very many, so the picture opens at any size; one box per rank for small jobs,
with ``--detail rank``, or for the hosts and ranks selected.  The PROV document and summary are
left untouched.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import _constants as C
from .._errors import ConfigError, MergeError
from .._merge._dot import (
    AUTO_RANK_DETAIL_MAX,
    DETAIL_CHOICES,
    RankSelection,
    dot_graph,
    parse_rank_ranges,
    write_dot,
    write_svg,
)
from .._output import output_folder

__all__ = ["run", "setup_parser"]

# The option's earlier form, still accepted: per-rank series detail becomes per-rank boxes.
_PROV_DETAIL_AS_DETAIL = {"auto": "auto", "rank": "rank", "job": "node"}


def setup_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories, oldest first")
    parser.add_argument(
        "-o", "--output", metavar="OUT_DIR", help="where to write (default: the run directory)"
    )
    parser.add_argument(
        "--svg", action="store_true", help=f"also render {C.GRAPH_SVG_FILENAME} (needs Graphviz)"
    )
    parser.add_argument(
        "--detail",
        choices=DETAIL_CHOICES,
        default=None,
        help=f"rank: one box per rank; node: ranks collapsed into nodes and groups; "
        f"auto (default): rank up to {AUTO_RANK_DETAIL_MAX} selected ranks, else node",
    )
    parser.add_argument(
        "--node",
        action="append",
        default=[],
        metavar="HOST",
        help="draw only the ranks on this host (shell pattern, e.g. 'nid0001*'); repeatable",
    )
    parser.add_argument("--ranks", metavar="RANGES", help="draw only these ranks, e.g. 0-63,100")
    parser.add_argument("--prov-detail", choices=C.PROV_DETAIL_CHOICES, default=None, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    from .._merge._dot_input import graph_input
    from .._reader import load_run

    if args.output is None and len(args.run_dirs) > 1:
        raise ConfigError("drawing several run directories needs an output directory (-o OUT_DIR)")
    detail = args.detail or _PROV_DETAIL_AS_DETAIL[args.prov_detail or "auto"]
    selection = RankSelection(
        hosts=tuple(args.node), ranks=parse_rank_ranges(args.ranks) if args.ranks else ()
    )
    target = Path(args.output or args.run_dirs[0])
    runs = []
    for run_dir in args.run_dirs:
        run = load_run(run_dir)  # no series statistics: the picture needs names and statuses
        if not run.metas:
            reasons = "; ".join(reason for _, reason in run.problems) or "no rank files"
            raise MergeError(f"{run_dir}: no readable rank file to draw ({reasons})")
        runs.append(graph_input(run))
    picture = dot_graph(runs, detail=detail, selection=selection)
    output_folder(target)  # after reading: a mistyped run directory is not created
    dot = write_dot(picture, target / C.GRAPH_DOT_FILENAME)
    print(
        f"wrote {dot} ({picture.nodes} nodes, {picture.edges} edges; "
        f"{'one box per rank' if picture.level == 'rank' else 'ranks collapsed into nodes'})"
    )
    if args.svg:
        svg, message = write_svg(dot, target / C.GRAPH_SVG_FILENAME, picture.nodes)
        if svg is not None:
            print(f"wrote {svg}")
        if message:
            print(message, file=sys.stderr)
    return 0
