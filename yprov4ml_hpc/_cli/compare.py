"""``yprov4ml-hpc compare RUN_A RUN_B``: the params that differ and final metrics side by side.

Params are rank 0's (the job's configuration as logged); a param that differs across the
ranks of a run is shown as 'varies'.  Final values are summary.json's ``last``: the mean
over ranks of each rank's last value.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from .._reader import RunData
from .._report._format import DASH, fmt_energy, fmt_num, fmt_seconds
from .._summaryfile import SAMPLER_CONTEXTS, RunSummary, load_summary, open_run
from ._text import print_table, warn

__all__ = ["run", "setup_parser"]

_MISSING = object()


def setup_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_a", metavar="RUN_A", help="first run directory")
    parser.add_argument("run_b", metavar="RUN_B", help="second run directory")
    parser.add_argument("--all-params", action="store_true", help="also list the params that are equal")
    parser.add_argument("--system", action="store_true", help="also compare the samplers' series")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")


def _params(data: RunData) -> dict[str, Any]:
    """Rank 0's params; a param whose value differs across ranks becomes 'varies (N values)'."""
    base = dict(data.params(data.ranks[0].rank))
    for info in data.ranks[1:]:
        for name, value in data.params(info.rank).items():
            if name in base and base[name] != value and not str(base[name]).startswith("varies"):
                base[name] = "varies across ranks"
    return base


def _show(value: Any) -> str:
    if value is _MISSING:
        return "(not set)"
    return json.dumps(value) if isinstance(value, (dict, list)) else str(value)


def _last(summary: RunSummary, system: bool) -> dict[tuple[str, str], Any]:
    return {
        (m["name"], m["context"]): m.get("last")
        for m in summary.data.get("metrics", [])
        if system or m.get("context") not in SAMPLER_CONTEXTS
    }


def _overview(data: RunData, summary: RunSummary) -> dict[str, Any]:
    ranks = summary.data.get("ranks", [])
    counts: dict[str, int] = {}
    for r in ranks:
        counts[str(r.get("status"))] = counts.get(str(r.get("status")), 0) + 1
    walls = [r["wall_time_s"] for r in ranks if isinstance(r.get("wall_time_s"), (int, float))]
    energy = summary.data.get("energy") or {}
    return {
        "run": f"{data.experiment}_{data.run_id}",
        "path": str(data.run_dir),
        "world_size": summary.data.get("world_size"),
        "status": ", ".join(f"{n} {s}" for s, n in counts.items()),
        "wall_time_s": max(walls) if walls else None,
        "energy_j": energy.get("total_j"),
        "emissions_kg": energy.get("emissions_kg"),
    }


def _change(a: Any, b: Any) -> tuple[str, str]:
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (a, b)):
        return DASH, DASH
    diff = b - a
    rel = f"{diff / abs(a) * 100:+.1f} %" if a else DASH
    return fmt_num(diff), rel


def run(args: argparse.Namespace) -> int:
    runs = []
    for path in (args.run_a, args.run_b):
        data = open_run(path)
        for name, why in data.problems:
            warn("compare", f"{path}: damaged rank file {name} left out: {why}")
        runs.append((data, load_summary(path, data)))
    (da, sa), (db, sb) = runs
    pa, pb = _params(da), _params(db)
    names = sorted(set(pa) | set(pb))
    params = [
        {"name": n, "a": pa.get(n, _MISSING), "b": pb.get(n, _MISSING)}
        for n in names
        if args.all_params or pa.get(n, _MISSING) != pb.get(n, _MISSING)
    ]
    la, lb = _last(sa, args.system), _last(sb, args.system)
    metrics = [
        {"name": k[0], "context": k[1], "a": la.get(k), "b": lb.get(k)} for k in sorted(set(la) | set(lb))
    ]
    oa, ob = _overview(da, sa), _overview(db, sb)
    if args.json:

        def clean(v: Any) -> Any:
            return None if v is _MISSING else v

        print(
            json.dumps(
                {
                    "a": oa,
                    "b": ob,
                    "params": [
                        {
                            **p,
                            "a": clean(p["a"]),
                            "b": clean(p["b"]),
                            "a_set": p["a"] is not _MISSING,
                            "b_set": p["b"] is not _MISSING,
                        }
                        for p in params
                    ],
                    "metrics": metrics,
                },
                indent=2,
            )
        )
        return 0
    print_table(
        ["", "A", "B"],
        [
            ["run", oa["run"], ob["run"]],
            ["world size", str(oa["world_size"]), str(ob["world_size"])],
            ["status", oa["status"], ob["status"]],
            ["wall time", fmt_seconds(oa["wall_time_s"]), fmt_seconds(ob["wall_time_s"])],
            ["energy", fmt_energy(oa["energy_j"]), fmt_energy(ob["energy_j"])],
            ["emissions kg", fmt_num(oa["emissions_kg"]), fmt_num(ob["emissions_kg"])],
        ],
        indent="",
        max_width=60,
    )
    title = "params" if args.all_params else "params that differ"
    print(f"\n{title} (rank 0)")
    if params:
        print_table(["param", "A", "B"], [[p["name"], _show(p["a"]), _show(p["b"])] for p in params])
    else:
        print(f"  (none: all {len(names)} params are equal)")
    print("\nfinal metric values (mean over ranks of each rank's last value)")
    if metrics:
        rows = [
            [m["name"], m["context"], fmt_num(m["a"]), fmt_num(m["b"]), *_change(m["a"], m["b"])]
            for m in metrics
        ]
        print_table(["metric", "context", "A", "B", "B - A", "change"], rows, right=(2, 3, 4, 5))
    else:
        print("  (no metrics)")
    return 0
