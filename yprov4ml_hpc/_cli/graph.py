"""``yprov4ml-hpc graph RUN_DIR [--svg] [-o OUT_DIR]``: draw the job's provenance graph.

Builds the same graph as merge (from the rank files) and writes graph.dot, and graph.svg
where Graphviz's ``dot`` is installed; the PROV document and summary are left untouched.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import _constants as C
from .._errors import ConfigError
from .._merge._dot import write_dot, write_svg

__all__ = ["run", "setup_parser"]


def setup_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories, oldest first")
    parser.add_argument(
        "-o", "--output", metavar="OUT_DIR", help="where to write (default: the run directory)"
    )
    parser.add_argument(
        "--svg", action="store_true", help=f"also render {C.GRAPH_SVG_FILENAME} (needs Graphviz)"
    )
    parser.add_argument(
        "--prov-detail",
        choices=C.PROV_DETAIL_CHOICES,
        default=None,
        help="per-rank detail (default: what start_run was given)",
    )


def run(args: argparse.Namespace) -> int:
    from .._merge import assemble  # networkx: only when the command runs

    if args.output is None and len(args.run_dirs) > 1:
        raise ConfigError("drawing several run directories needs an output directory (-o OUT_DIR)")
    target = Path(args.output or args.run_dirs[0])
    _, graph = assemble(args.run_dirs, prov_detail=args.prov_detail)
    target.mkdir(parents=True, exist_ok=True)  # after reading: a mistyped run directory is not created
    dot = write_dot(graph, target / C.GRAPH_DOT_FILENAME)
    print(f"wrote {dot} ({graph.number_of_nodes()} nodes, {graph.number_of_edges()} edges)")
    if args.svg:
        svg, message = write_svg(dot, target / C.GRAPH_SVG_FILENAME, graph.number_of_nodes())
        if svg is not None:
            print(f"wrote {svg}")
        if message:
            print(message, file=sys.stderr)
    return 0
