"""start_run/end_run under real ``mpiexec`` at 1, 2, 4, 8, 16 ranks (issue 6).

Each launch runs a short job (``--steps`` steps of 10 metrics per rank).  Every rank times its
own ``start_run`` and ``end_run`` (whatever end_run does: close, then the collective finalize
once it exists); the table gives the max (the job waits for the slowest rank) and the median
over ranks.  On a 2-core machine 8 and 16 ranks are oversubscribed: reported as measured.

usage: python benchmarks/bench_scale.py [--ranks 1,2,4,8,16] [--steps 200] [--out results/scale.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import clean_launcher_env, machine_info, median, write_json


def find_mpiexec() -> str | None:
    """The mpiexec beside this interpreter (mpich wheel), else the one on PATH."""
    candidate = Path(sysconfig.get_path("scripts")) / "mpiexec"
    if candidate.exists():
        return str(candidate)
    return shutil.which("mpiexec")


# --- the job every rank runs ------------------------------------------------------------------
def worker(save_dir: Path, steps: int, out: Path) -> int:
    """One rank: time imports, start_run, a short loop and end_run; rank 0 writes the JSON."""
    t0 = time.perf_counter()
    import yprov4ml_hpc as prov

    t1 = time.perf_counter()
    from mpi4py import MPI

    t2 = time.perf_counter()
    comm = MPI.COMM_WORLD
    comm.Barrier()
    t3 = time.perf_counter()
    prov.start_run("scale", provenance_save_dir=str(save_dir))
    t4 = time.perf_counter()
    ctx = prov.Context.TRAINING
    for step in range(steps):
        for k in range(10):
            prov.log_metric(f"m{k}", 0.1 * k + step, context=ctx, step=step)
    t5 = time.perf_counter()
    comm.Barrier()
    t6 = time.perf_counter()
    run_dir = prov.end_run()
    t7 = time.perf_counter()
    mine = {
        "rank": comm.Get_rank(),
        "import_s": t1 - t0,
        "mpi_import_s": t2 - t1,
        "start_run_s": t4 - t3,
        "loop_s": t5 - t4,
        "end_run_s": t7 - t6,
        "run_dir": str(run_dir),
    }
    everyone = comm.gather(mine, root=0)
    if comm.Get_rank() == 0:
        out.write_text(json.dumps(everyone))
    return 0


# --- the driver ---------------------------------------------------------------------------------
def _launch(mpiexec: str, ranks: int, steps: int, workdir: Path, timeout_s: float) -> dict[str, Any]:
    save_dir = workdir / f"n{ranks}"
    out = workdir / f"n{ranks}.json"
    cmd = [mpiexec, "-n", str(ranks), sys.executable, str(Path(__file__).resolve())]
    cmd += ["--worker", "--save-dir", str(save_dir), "--steps", str(steps), "--worker-out", str(out)]
    env = clean_launcher_env(dict(os.environ))
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return {"ranks": ranks, "ok": False, "error": f"timed out after {timeout_s} s", "command": cmd}
    wall = time.perf_counter() - t0
    result: dict[str, Any] = {"ranks": ranks, "mpiexec_wall_s": wall, "returncode": proc.returncode}
    if proc.returncode != 0 or not out.exists():
        result.update(ok=False, error=(proc.stderr or proc.stdout)[-2000:])
        return result
    per_rank = json.loads(out.read_text())
    run_dirs = {r["run_dir"] for r in per_rank}
    rank_files = sum(len(list((Path(d) / "ranks").glob("rank_*.h5"))) for d in run_dirs)
    result["ok"] = True
    result["run_dirs"] = len(run_dirs)
    result["rank_files"] = rank_files
    for key in ("start_run_s", "end_run_s", "import_s", "mpi_import_s", "loop_s"):
        values = [r[key] for r in per_rank]
        result[f"{key}_max"] = max(values)
        result[f"{key}_median"] = median(values)
    result["per_rank"] = per_rank
    shutil.rmtree(save_dir, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", default="1,2,4,8,16", help="comma-separated rank counts")
    parser.add_argument("--steps", type=int, default=200, help="steps of 10 metrics per rank")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per mpiexec launch")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--out", default=None, help="write the JSON result here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--save-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.save_dir, args.steps, args.worker_out)

    mpiexec = find_mpiexec()
    res: dict[str, Any] = {"benchmark": "scale", "machine": machine_info(), "argv": sys.argv}
    res["config"] = {"steps": args.steps, "metrics_per_step": 10, "mpiexec": mpiexec}
    if mpiexec is None:
        res["skipped"] = "no mpiexec found (pip install mpi4py mpich)"
        write_json(args.out, res)
        return 0
    version = subprocess.run([mpiexec, "--version"], capture_output=True, text=True, check=False)
    res["config"]["mpiexec_version"] = " ".join(version.stdout.split()[:8])
    res["config"]["command"] = f"{mpiexec} -n N {sys.executable} {Path(__file__).name} --worker ..."
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_scale_") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        counts = [int(n) for n in args.ranks.split(",") if n.strip()]
        res["launches"] = [_launch(mpiexec, n, args.steps, workdir, args.timeout) for n in counts]
    res["seconds"] = time.perf_counter() - started
    write_json(args.out, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
