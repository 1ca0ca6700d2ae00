"""``yprov4ml-hpc summary RUN_DIR``: summary.json as terminal tables.

Without summary.json (a run not merged yet) the same figures are computed from the rank
files, and the header says so.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from .. import _constants as C
from .._progress import Progress
from .._reader import RunData
from .._report._format import DASH, fmt_bytes, fmt_energy, fmt_num, fmt_seconds
from .._summaryfile import SAMPLER_CONTEXTS, RunSummary, load_summary, open_run, read_summary_file
from ._text import print_table, warn

__all__ = ["run", "setup_parser"]

MAX_RANK_ROWS = 32  # above this, per-node lines and the ranks worth a look


def setup_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (prov/<experiment>_<run_id>)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument(
        "--all-ranks", action="store_true", help=f"list every rank even above {MAX_RANK_ROWS} ranks"
    )
    parser.add_argument(
        "--system", action="store_true", help="also list the samplers' series (contexts gpu, energy, system)"
    )


def _key(entry: dict[str, Any]) -> tuple[str, int]:
    """A rank of a multi-run merge is named by its run too (rank 0 of each run)."""
    return (str(entry.get("run_id") or ""), int(entry["rank"]))


def _label(entry: dict[str, Any]) -> str:
    run_id = entry.get("run_id")
    return f"{run_id}:{entry['rank']}" if run_id else str(entry["rank"])


def _rank_rows(ranks: list[dict[str, Any]], stragglers: set[tuple[str, int]]) -> list[list[str]]:
    rows = []
    for r in ranks:
        wall = r.get("wall_time_s")
        steps = r.get("steps") or 0
        rate = steps / wall if isinstance(wall, (int, float)) and wall > 0 else None
        rows.append(
            [
                _label(r),
                str(r.get("host") or DASH),
                str(r.get("local_rank", DASH)),
                str(r.get("status")) + (" *" if _key(r) in stragglers else ""),
                fmt_seconds(wall),
                fmt_num(steps),
                fmt_num(rate),
                fmt_bytes(r.get("bytes")),
                fmt_energy(r.get("energy_j")),
            ]
        )
    return rows


def _print_ranks(ranks: list[dict[str, Any]], stragglers: set[tuple[str, int]], all_ranks: bool) -> None:
    headers = ["rank", "host", "local", "status", "wall time", "steps", "steps/s", "written", "energy"]
    right = (0, 2, 4, 5, 6, 7, 8)
    if len(ranks) > MAX_RANK_ROWS and not all_ranks:
        nodes: dict[str, list[dict[str, Any]]] = {}
        for r in ranks:
            nodes.setdefault(str(r.get("host") or DASH), []).append(r)
        print("nodes")
        rows = []
        for host, members in nodes.items():
            walls = [r["wall_time_s"] for r in members if isinstance(r.get("wall_time_s"), (int, float))]
            done = sum(1 for r in members if r.get("status") == C.STATUS_FINISHED)
            rows.append(
                [
                    host,
                    str(len(members)),
                    f"{done} finished",
                    fmt_seconds(statistics.median(walls)) if walls else DASH,
                    fmt_seconds(max(walls)) if walls else DASH,
                ]
            )
        print_table(["node", "ranks", "status", "median wall", "max wall"], rows, right=(1, 3, 4))
        walls = sorted(
            (r for r in ranks if isinstance(r.get("wall_time_s"), (int, float))),
            key=lambda r: r["wall_time_s"],
        )
        keep = {_key(r) for r in ranks if r.get("status") != "finished"} | stragglers
        keep |= {_key(r) for r in walls[-5:]}
        print(f"\nranks worth a look (not finished, stragglers, 5 slowest; --all-ranks for all {len(ranks)})")
        ranks = [r for r in ranks if _key(r) in keep]
    else:
        print("ranks")
    print_table(headers, _rank_rows(ranks, stragglers), right=right)


def _print_metrics(metrics: list[dict[str, Any]]) -> None:
    def at(rank: Any) -> str:
        return f"r{rank}" if rank is not None else DASH

    rows = [
        [
            m["name"],
            m["context"],
            fmt_num(m.get("count")),
            fmt_num(m.get("min")),
            at(m.get("min_rank")),
            fmt_num(m.get("max")),
            at(m.get("max_rank")),
            fmt_num(m.get("mean")),
            fmt_num(m.get("last")),
        ]
        for m in metrics
    ]
    print_table(
        ["metric", "context", "points", "min", "at", "max", "at", "mean", "last"], rows, right=(2, 3, 5, 7, 8)
    )


def _print_energy(data: dict[str, Any]) -> None:
    energy = data.get("energy") or {}
    total, kg = energy.get("total_j"), energy.get("emissions_kg")
    parts = [
        f"total {fmt_energy(total)} ({fmt_num(total / 3.6e6)} kWh)"
        if isinstance(total, (int, float))
        else "energy not measured"
    ]
    parts.append(
        f"emissions {fmt_num(kg)} kg CO2e" if isinstance(kg, (int, float)) else "emissions not measured"
    )
    print("energy   " + " \u00b7 ".join(parts))
    nodes = energy.get("per_node_j") or {}
    if nodes:
        shown = list(nodes.items())[:8]
        more = f", \u2026 {len(nodes) - 8} more" if len(nodes) > 8 else ""
        print("         per node: " + ", ".join(f"{h} {fmt_energy(j)}" for h, j in shown) + more)
    c = data.get("collector") or {}
    parts = [
        f"{fmt_num(c.get('log_calls'))} log calls",
        f"{fmt_num(c.get('flushes'))} flushes in {fmt_seconds(c.get('flush_time_s'))}",
        f"finalize {fmt_seconds(c.get('finalize_time_s'))}",
        f"{fmt_bytes(c.get('bytes_written'))} written",
    ]
    print("collector " + " \u00b7 ".join(parts))


def _load(run_dir: Path) -> RunSummary:
    """The run's summary; a `merge A B -o OUT` folder has summary.json and no rank files."""
    if not (run_dir / C.RANKS_DIRNAME).is_dir() and (run_dir / C.SUMMARY_FILENAME).is_file():
        return RunSummary(read_summary_file(run_dir / C.SUMMARY_FILENAME), "summary.json")
    data: RunData = open_run(run_dir)
    for name, why in data.problems:
        warn("summary", f"damaged rank file {name} left out: {why}")
    with Progress(len(data.ranks), "reading ranks") as bar:
        return load_summary(run_dir, data, progress=bar)


def run(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    summary = _load(run_dir)
    s = summary.data
    if args.json:
        print(json.dumps(s, indent=2))
        return 0
    runs = s.get("runs") or []
    order = {str(r.get("run_id")): i for i, r in enumerate(runs)}
    ranks = sorted(s.get("ranks", []), key=lambda r: (order.get(str(r.get("run_id")), 0), r["rank"]))
    counts: dict[str, int] = {}
    for r in ranks:
        counts[str(r.get("status"))] = counts.get(str(r.get("status")), 0) + 1
    nodes = len({r.get("host") for r in ranks if r.get("host")})
    source = (
        f"summary.json ({s.get('generated_by', '?')}, {s.get('generated_at', '?')})"
        if not summary.computed
        else "computed from the rank files: no summary.json yet (yprov4ml-hpc merge writes it)"
    )
    print(f"{s.get('experiment')}_{s.get('run_id')}  ({run_dir})")
    if runs:
        merged = ", ".join(f"{r.get('run_id')} ({r.get('world_size')} ranks)" for r in runs)
        print(f"merged from {len(runs)} runs, in order: {merged}; ranks are named run:rank")
    print(
        f"{s.get('world_size')} ranks on {nodes} node(s) \u00b7 "
        + ", ".join(f"{n} {st}" for st, n in counts.items())
        + f" \u00b7 {source}\n"
    )
    stragglers = {_key(x) for x in s.get("stragglers", [])}
    _print_ranks(ranks, stragglers, args.all_ranks)
    if stragglers:
        print("\nstragglers (* above)")
        for x in s.get("stragglers", []):
            print(f"  rank {_label(x)} ({x.get('host')}): {x.get('reason')}")
    metrics = [m for m in s.get("metrics", []) if args.system or m.get("context") not in SAMPLER_CONTEXTS]
    hidden = len(s.get("metrics", [])) - len(metrics)
    print("\nmetrics across ranks (last = mean over ranks of each rank's last value)")
    if metrics:
        _print_metrics(metrics)
    else:
        print("  (none logged)")
    if hidden:
        print(f"  + {hidden} sampler series (gpu, energy, system): --system lists them")
    print()
    _print_energy(s)
    for problem in s.get("problems", []) or []:
        text = f"{problem.get('file')}: {problem.get('reason')}" if isinstance(problem, dict) else problem
        print(f"problem: {text}")
    return 0
