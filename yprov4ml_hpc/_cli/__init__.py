"""The ``yprov4ml-hpc`` command line: an explicit table of subcommands, one module each.

Each command module has ``setup_parser(parser)`` and ``run(args) -> int``.  Errors the
user can fix (a missing or damaged run directory, a bad argument) print one line and exit
with status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from types import ModuleType

from .._errors import Yprov4mlError
from .._version import __version__
from . import compare, export, graph, info, ls, merge, plot, report, summary

__all__ = ["main"]

# name -> (module, one-line help).  Keep in the order `--help` should list them.
COMMANDS: dict[str, tuple[ModuleType, str]] = {
    "info": (info, "list the ranks, series, point counts and status of a run directory"),
    "merge": (merge, "write the job's PROV document and summary.json from the rank files"),
    "export": (export, "convert the PROV document (provn, xml, rdf, jsonld) or dump metrics (json, csv)"),
    "graph": (graph, "draw the job's provenance graph (graph.dot, graph.svg with Graphviz)"),
    "ls": (ls, "list the runs in a provenance folder: ranks, status, start, duration"),
    "summary": (summary, "print a run's summary: ranks, metrics across ranks, stragglers, energy"),
    "plot": (plot, "draw PNG figures: metrics across ranks, hardware, energy, a per-rank map"),
    "report": (report, "write one self-contained HTML report of a run (figures, ranks, graph)"),
    "compare": (compare, "compare two runs: params that differ, final metric values side by side"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="yprov4ml-hpc",
        description="Provenance of multi-rank ML jobs: inspect, merge and export run directories "
        "written by yprov4ml_hpc (no MPI needed).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        module.setup_parser(command_parser)
        command_parser.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args._run(args))
    except BrokenPipeError:  # `yprov4ml-hpc ls prov | head`: the reader left; exit quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    # A user's mistake or a file problem is one line; anything else (a KeyError included) is
    # a bug of ours and keeps its traceback.
    except (Yprov4mlError, OSError) as exc:
        print(f"yprov4ml-hpc {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
