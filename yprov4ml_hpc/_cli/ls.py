"""``yprov4ml-hpc ls PROV_DIR``: the runs in a provenance folder, oldest first.

A merged run is described from its summary.json and one rank file; an unmerged one (still
running, or killed before its finalize) from its rank files' attributes alone, so listing
a folder of large jobs stays quick.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np

from .. import _constants as C
from .._errors import DamagedRunError, StorageError
from .._progress import Progress
from .._reader import open_rank_file, rank_file_paths
from .._report._format import DASH, fmt_seconds, fmt_time
from .._report._summary import read_summary_file
from ._text import print_table, warn

__all__ = ["run", "setup_parser"]


def setup_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "prov_dir",
        metavar="PROV_DIR",
        help="a folder of run directories (start_run's provenance_save_dir), or one run",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--job", metavar="JOB_ID", help="only the runs of this launcher job (e.g. a Slurm job id; any step)"
    )
    parser.add_argument(
        "--paths", action="store_true", help="print only the run directories, one a line (for job scripts)"
    )


STALE_AFTER_S = 300.0  # a 'running' file not written for this long most likely lost its process


def _rank_attrs(path: Path) -> dict[str, Any] | None:
    """Root attributes only (no datasets): what ls needs, at one small read per file."""
    try:
        with open_rank_file(path) as handle:
            attrs = dict(handle.attrs)
        mtime_ns = path.stat().st_mtime_ns
    except (OSError, RuntimeError, ValueError):
        return None
    out: dict[str, Any] = {"mtime_ns": mtime_ns}
    for key in (
        "experiment",
        "run_id",
        "world_size",
        "status",
        "start_ns",
        "end_ns",
        "host",
        "pid",
        "job_id",
        "flush_interval_s",
        "schema",
    ):
        value = attrs.get(key)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        out[key] = value.item() if isinstance(value, np.generic) else value
    if out.get("schema") != C.RANK_SCHEMA:
        return None
    if out.get("status") == C.STATUS_RUNNING and not _looks_alive(out):
        out["status"] = C.STATUS_INCOMPLETE  # as a merge will call it
    return out


def _looks_alive(attrs: dict[str, Any]) -> bool:
    """Is the process writing a 'running' file still there?  Sure only on its own host."""
    if attrs.get("host") == socket.gethostname() and isinstance(attrs.get("pid"), int):
        try:
            os.kill(attrs["pid"], 0)
        except ProcessLookupError:
            return False
        except OSError:  # exists, owned by someone else
            return True
        return True
    quiet_s = (time.time_ns() - attrs["mtime_ns"]) / 1e9
    return quiet_s < max(3 * float(attrs.get("flush_interval_s") or 0.0), STALE_AFTER_S)


_STATUS_ORDER = {
    s: i
    for i, s in enumerate(("finished", "running", "incomplete", "killed", "failed", "missing", "damaged"))
}


def _status_text(counts: dict[str, int]) -> str:
    if len(counts) == 1:
        return next(iter(counts))
    ordered = sorted(counts, key=lambda s: (_STATUS_ORDER.get(s, len(_STATUS_ORDER)), s))
    return ", ".join(f"{counts[s]} {s}" for s in ordered)


def describe_run(run_dir: Path, bar: Progress | None = None) -> dict[str, Any]:
    """One row of the listing (a dict, also the --json record)."""
    ranks_dir = run_dir / C.RANKS_DIRNAME
    names = [p.name for p in ranks_dir.iterdir()] if ranks_dir.is_dir() else []
    files = [ranks_dir / name for name in rank_file_paths(names)]
    summary_path = run_dir / C.SUMMARY_FILENAME
    row: dict[str, Any] = {"path": str(run_dir), "merged": summary_path.is_file(), "rank_files": len(files)}
    summary = None
    if row["merged"]:
        try:
            summary = read_summary_file(summary_path)
        except DamagedRunError:
            row["merged"] = False  # damaged: describe it from the rank files instead
    attrs = [a for a in (_rank_attrs(p) for p in (files[:1] if summary else files)) if a is not None]
    if bar is not None:
        bar.update()
    first = attrs[0] if attrs else {}
    row["experiment"] = (summary or first).get("experiment") or ""
    row["run_id"] = (summary or first).get("run_id") or run_dir.name
    row["job_id"] = first.get("job_id") or None
    starts = [int(a["start_ns"]) for a in attrs if a.get("start_ns")]
    row["start_ns"] = min(starts) if starts else None
    if summary is not None:
        ranks = summary.get("ranks", [])
        row["world_size"] = int(summary.get("world_size", len(ranks)))
        counts: dict[str, int] = {}
        for r in ranks:
            counts[str(r.get("status"))] = counts.get(str(r.get("status")), 0) + 1
        walls = [r["wall_time_s"] for r in ranks if isinstance(r.get("wall_time_s"), (int, float))]
        row["duration_s"] = max(walls) if walls else None
    else:
        row["world_size"] = max([int(a.get("world_size") or 1) for a in attrs] + [len(files)])
        counts = {}
        for a in attrs:
            counts[str(a.get("status"))] = counts.get(str(a.get("status")), 0) + 1
        if len(attrs) < len(files):
            counts["damaged"] = len(files) - len(attrs)
        missing = row["world_size"] - len(files)
        if missing > 0:
            counts["missing"] = missing
        # A dead rank's last sign of life is its last flush (the file's mtime).
        ends = [int(a["end_ns"]) or int(a["mtime_ns"]) for a in attrs]
        running = any(a.get("status") == C.STATUS_RUNNING for a in attrs)
        if row["start_ns"] and running:
            row["duration_s"] = (time.time_ns() - row["start_ns"]) / 1e9  # so far
        else:
            row["duration_s"] = (max(ends) - row["start_ns"]) / 1e9 if ends and row["start_ns"] else None
    row["status"] = _status_text(counts) if counts else "empty"
    row["status_counts"] = counts
    return row


def _job_matches(job_id: Any, wanted: str) -> bool:
    """'12345' matches the job and each of its steps ('12345.0', ...); '12345.1' one step."""
    text = str(job_id or "")
    return bool(text) and (text == wanted or text.startswith(f"{wanted}."))


def find_runs(prov_dir: Path) -> list[Path]:
    if (prov_dir / C.RANKS_DIRNAME).is_dir() or (prov_dir / C.SUMMARY_FILENAME).is_file():
        return [prov_dir]
    return sorted(
        p
        for p in prov_dir.iterdir()
        if p.is_dir() and ((p / C.RANKS_DIRNAME).is_dir() or (p / C.SUMMARY_FILENAME).is_file())
    )


def run(args: argparse.Namespace) -> int:
    prov_dir = Path(args.prov_dir)
    if not prov_dir.exists():
        raise StorageError(f"{prov_dir}: no such directory")
    if not prov_dir.is_dir():
        raise StorageError(f"{prov_dir}: not a directory; pass the folder that holds the run directories")
    runs = find_runs(prov_dir)
    with Progress(len(runs), "reading runs") as bar:
        rows = [describe_run(path, bar) for path in runs]
    rows.sort(key=lambda r: (r["start_ns"] or 0, r["path"]))
    if args.job:
        rows = [r for r in rows if _job_matches(r["job_id"], args.job)]
    if args.paths:
        for r in rows:
            print(r["path"])
        return 0
    if args.json:
        print(json.dumps({"prov_dir": str(prov_dir), "runs": rows}, indent=2))
        return 0
    if not rows:
        warn("ls", f"no run directories in {prov_dir} (a run directory holds a ranks/ folder)")
        return 0
    table = [
        [
            r["experiment"],
            r["run_id"],
            f"{r['rank_files']}/{r['world_size']}",
            r["status"],
            fmt_time(r["start_ns"]),
            fmt_seconds(r["duration_s"]) if r["duration_s"] else DASH,
            "yes" if r["merged"] else "no",
        ]
        for r in rows
    ]
    print(f"runs in {prov_dir} (run directory: <experiment>_<run id>)\n")
    headers = ["experiment", "run id", "ranks", "status", "start", "duration", "merged"]
    print_table(headers, table, right=(2, 5), indent="", max_width=48)
    unmerged = [r for r in rows if not r["merged"] and "running" not in r["status_counts"]]
    if unmerged:
        print(f"\n{len(unmerged)} run(s) not merged: yprov4ml-hpc merge {unmerged[0]['path']}")
    return 0
