"""``yprov4ml-hpc merge RUN_DIR [RUN_DIR ...] [-o OUT_DIR]``: the job's document from rank files.

The same build as the collective finalize, so a run whose job was killed before end_run gets
the same document it would have had.  Started by an MPI launcher (``mpiexec -n N``, ``srun``
with PMI) the N processes share the reading of the rank files and rank 0 builds the same
document a serial merge writes.  Several run directories (chained or restarted jobs) are
merged into one document, linked in the order given.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from .. import _constants as C
from .._progress import Progress

__all__ = ["run", "setup_parser"]


def setup_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories, oldest first")
    parser.add_argument(
        "-o",
        "--output",
        metavar="OUT_DIR",
        help="where to write (default: the run directory; required for several)",
    )
    parser.add_argument(
        "--strict", action="store_true", help="a damaged or missing rank file is an error (exit 2)"
    )
    parser.add_argument(
        "--consolidate",
        action="store_true",
        help=f"also write {C.CONSOLIDATED_FILENAME}: every rank's series in one HDF5 file",
    )
    parser.add_argument(
        "--prov-detail",
        choices=C.PROV_DETAIL_CHOICES,
        default=None,
        help="per-rank detail in the document (default: what start_run was given)",
    )
    parser.add_argument(
        "--straggler-factor",
        type=float,
        default=C.DEFAULT_STRAGGLER_FACTOR,
        metavar="F",
        help="a rank is a straggler above F x the median step interval (default %(default)s)",
    )
    parser.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        metavar="N",
        help="processes reading rank files (default: the cores here, %(default)s)",
    )
    parser.add_argument("--graph", action="store_true", help=f"also write {C.GRAPH_DOT_FILENAME}")
    parser.add_argument(
        "--svg", action="store_true", help=f"also write {C.GRAPH_SVG_FILENAME} (needs Graphviz)"
    )


def _launched_comm() -> Any:
    """MPI's world when an MPI launcher started several merge processes, else None: mpi4py
    (which initialises MPI) is imported only then, so a login-node merge never touches MPI."""
    if not any(os.environ.get(name) for name in C.MPI_RANK_VARS):
        return None
    from .._launcher import import_mpi

    comm = import_mpi().COMM_WORLD
    return comm if comm.Get_size() > 1 else None


def run(args: argparse.Namespace) -> int:
    from .._merge import build  # networkx: only when the command runs
    from .._offline import read_metas_shared

    comm = _launched_comm()
    read_metas = None
    if comm is not None:
        read_metas = read_metas_shared(args.run_dirs, comm)
        if read_metas is None:
            return 0  # this process's share went to rank 0, which builds, writes and reports
    elif os.environ.get(C.SLURM_STEP_VAR) and os.environ.get(C.SLURM_RANK_VAR, "0") not in ("", "0"):
        # srun without MPI: the tasks cannot share the work, so one merges and the rest stand by.
        print(f"task {os.environ[C.SLURM_RANK_VAR]}: without MPI only task 0 merges", file=sys.stderr)
        return 0
    with Progress(None, "reading rank files") as bar:
        result = build(
            args.run_dirs,
            args.output,
            generated_by="merge",
            prov_detail=args.prov_detail,
            straggler_factor=args.straggler_factor,
            strict=args.strict,
            create_graph=args.graph,
            create_svg=args.svg,
            consolidate=args.consolidate,
            progress=bar,
            workers=args.jobs,
            read_metas=read_metas,
        )
    by_run: dict[str, dict[str, list[int]]] = {}
    for entry in result.summary["ranks"]:
        run_id = entry.get("run_id", result.summary["run_id"])
        by_run.setdefault(run_id, {}).setdefault(entry["status"], []).append(entry["rank"])
    for run_input in result.runs:
        statuses = by_run.get(run_input.run_id, {})
        counts = ", ".join(
            f"{len(ranks)} {status}" + (f" (ranks {_short(ranks)})" if status != C.STATUS_FINISHED else "")
            for status, ranks in sorted(statuses.items())
        )
        print(f"{run_input.experiment}_{run_input.run_id}: {run_input.world_size} ranks: {counts}")
        for name, why in run_input.problems:
            print(f"  damaged: {why if why.startswith(name) else f'{name}: {why}'}")
    for straggler in result.summary["stragglers"]:
        print(f"  straggler: rank {straggler['rank']} on {straggler['host']}: {straggler['reason']}")
    print(f"wrote {result.document} ({result.document_bytes} bytes)")
    print(f"wrote {result.summary_path}")
    for extra in (result.graph_dot, result.graph_svg, result.consolidated):
        if extra is not None:
            print(f"wrote {extra}")
    for message in result.messages:
        print(message, file=sys.stderr)
    if args.output is None:
        # In place: a rank that died left a journal; fold it now, as the public merge() does.
        from .._offline import fold_dead_ranks

        for line in fold_dead_ranks(args.run_dirs):
            print(line, file=sys.stderr)
    return 0


def _short(ranks: list[int], limit: int = 20) -> str:
    shown = ", ".join(str(r) for r in ranks[:limit])
    return shown + (f", ... ({len(ranks) - limit} more)" if len(ranks) > limit else "")
