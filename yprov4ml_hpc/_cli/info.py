"""``yprov4ml-hpc info RUN_DIR``: what the rank files hold, straight from disk."""

from __future__ import annotations

import argparse
import json
import time

from .. import _constants as C
from .._reader import load_run

__all__ = ["run", "setup_parser"]


def setup_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (prov/<experiment>_<run_id>)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")


def _fmt_time(ns: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ns / 1e9)) if ns else "-"


def run(args: argparse.Namespace) -> int:
    data = load_run(args.run_dir)
    ranks = [
        {
            "rank": r.rank,
            "host": r.host,
            "local_rank": r.local_rank,
            "pid": r.pid,
            "status": r.status,
            "start": _fmt_time(r.start_ns),
            "wall_time_s": round((r.end_ns - r.start_ns) / 1e9, 3) if r.end_ns else None,
        }
        for r in data.ranks
    ]
    series: dict[tuple[str, str], dict[int, int]] = {}
    for rank, meta in data.metas.items():
        for s in meta.series:
            series.setdefault((s.name, s.context), {}).setdefault(rank, s.count)
    if args.json:
        print(
            json.dumps(
                {
                    "run_dir": str(data.run_dir),
                    "experiment": data.experiment,
                    "run_id": data.run_id,
                    "world_size": data.world_size,
                    "ranks": ranks,
                    "missing_ranks": data.missing_ranks,
                    "damaged_ranks": sorted(data.damaged),
                    "series": [
                        {"name": n, "context": c, "points_per_rank": {str(k): v for k, v in per.items()}}
                        for (n, c), per in sorted(series.items())
                    ],
                    "problems": [{"file": f, "reason": why} for f, why in data.problems],
                },
                indent=2,
            )
        )
        return 0
    print(f"run {data.experiment}_{data.run_id}  ({data.run_dir})")
    print(f"world size {data.world_size}, {len(data.ranks)} readable rank files")
    print(f"\n{'rank':>6} {'host':<20} {'local':>5} {'pid':>8} {'status':<10} {'start':<19} {'wall s':>9}")
    for r in ranks:
        wall = f"{r['wall_time_s']:.3f}" if r["wall_time_s"] is not None else "-"
        print(
            f"{r['rank']:>6} {str(r['host'])[:20]:<20} {r['local_rank']:>5} {r['pid']:>8} "
            f"{r['status']:<10} {r['start']:<19} {wall:>9}"
        )
    for rank in data.missing_ranks:
        status = C.STATUS_DAMAGED if rank in data.damaged else C.STATUS_MISSING
        print(f"{rank:>6} {'-':<20} {'-':>5} {'-':>8} {status:<10}")
    print(f"\n{'series':<40} {'context':<14} {'ranks':>5} {'points':>12}")
    for (name, context), per in sorted(series.items()):
        print(f"{name[:40]:<40} {context[:14]:<14} {len(per):>5} {sum(per.values()):>12}")
    for name, why in data.problems:
        print(f"damaged: {name}: {why}")
    return 0
