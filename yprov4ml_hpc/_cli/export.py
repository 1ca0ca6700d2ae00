"""``yprov4ml-hpc export RUN_DIR --format F [-o OUT]``: other serialisations and plain files."""

from __future__ import annotations

import argparse

from .._export import FORMATS, export

__all__ = ["run", "setup_parser"]


def setup_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (or a merge output directory)")
    parser.add_argument(
        "-f",
        "--format",
        required=True,
        choices=list(FORMATS),
        help="provn, xml (PROV-XML), rdf (PROV-O Turtle), jsonld (PROV-O JSON-LD): "
        "from the PROV document; metrics-json, csv: every series and param as logged",
    )
    parser.add_argument(
        "-o", "--output", metavar="PATH", help="file (or folder, for csv) to write; default: inside RUN_DIR"
    )


def run(args: argparse.Namespace) -> int:
    target = export(args.run_dir, args.format, args.output)
    print(f"wrote {target}")
    return 0
