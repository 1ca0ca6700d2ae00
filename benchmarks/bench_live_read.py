"""Reading a run while it writes: ``load_run`` + every series of a live 4-rank job.

A real ``mpiexec -n 4`` job (``tests/faults/scripts/live_job.py``: 2 series, a frame every
few ms, a param every 200 steps) writes its journals for ``--seconds`` at ``--steps-per-s``.
Two reader processes read it in turn, one read each per round (the order alternates): the
``--baseline`` tree (exported with ``git archive``) and the working tree.  One read =
``load_run(run_dir)`` then ``series()`` of every series of every rank: what ``info``,
``summary`` and a user's notebook do.  Reported per side: median read time, the journals'
size when read, and the median of the per-round ratio baseline/current.

Then the same two readers read a copy of the journals taken mid-run (a killed run: nothing
grows) ``--repeats`` times: the first read and the median of the later ones.

usage: python benchmarks/bench_live_read.py [--seconds 20] [--steps-per-s 4000]
                                            [--baseline 3e7ad35] [--out results/live_read.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _common import clean_launcher_env, machine_info, median, write_json

ROOT = Path(__file__).resolve().parent.parent
JOB = ROOT / "tests" / "faults" / "scripts" / "live_job.py"
DEFAULT_BASELINE = "3e7ad35"  # main before the reader's journal cache


def _serve(run_dir: str) -> None:
    """Child: one read per line on stdin (``read DIR``), one JSON line back."""
    import yprov4ml_hpc as prov4ml

    for line in sys.stdin:
        target = Path(line.split(maxsplit=1)[1].strip()) if line.strip() != "read" else Path(run_dir)
        ranks = target / "ranks"
        journal_bytes = sum(p.stat().st_size for p in ranks.glob("*.journal")) if ranks.is_dir() else 0
        started = time.perf_counter()
        try:
            data = prov4ml.load_run(target)
            points = sum(len(data.series(m, c, r)) for m, c, r in data.series_keys())
            live = sum(1 for r in data.ranks if r.path is not None and r.path.suffix == ".journal")
            error = None
        except Exception as exc:  # reported; the driver decides
            points, live, error = 0, 0, f"{type(exc).__name__}: {exc}"
        seconds = time.perf_counter() - started
        print(json.dumps({"s": seconds, "points": points, "journal_ranks": live,
                          "journal_bytes": journal_bytes, "error": error}), flush=True)


def _copy_journals(source: Path, target: Path) -> None:
    target.mkdir(parents=True)
    for journal in source.glob("*.journal"):
        shutil.copyfile(journal, target / journal.name)


class _Reader:
    def __init__(self, pythonpath: Path, run_dir: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(pythonpath)}
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve", str(run_dir)], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def read(self, target: Path | None = None) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("read\n" if target is None else f"read {target}\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("reader died")
        return json.loads(line)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


def bench(seconds: float, steps_per_s: int, baseline: str, repeats: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench_live_") as tmp_name:
        tmp = Path(tmp_name)
        base = tmp / "baseline"
        base.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", baseline, "yprov4ml_hpc"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
        run_dir = tmp / "live_bench"
        env = clean_launcher_env({**os.environ, "PYTHONPATH": str(ROOT), "YPROV4ML_HPC_CARBON": "0"})
        job = subprocess.Popen(["mpiexec", "-n", "4", sys.executable, str(JOB), str(tmp), "bench",
                                str(seconds), str(steps_per_s)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        readers = {"before": _Reader(base, run_dir), "after": _Reader(ROOT, run_dir)}
        rounds: list[dict[str, Any]] = []
        static = tmp / "killed_copy"
        try:
            while not (run_dir / "ranks").is_dir() or not any((run_dir / "ranks").glob("*.journal")):
                time.sleep(0.05)
            # The killed run's copy is taken mid-run by a timer: a baseline read of a fast job can
            # outlast the job.
            copier = threading.Timer(seconds / 2, _copy_journals, (run_dir / "ranks", static / "ranks"))
            copier.start()
            while job.poll() is None:
                order = ["before", "after"] if len(rounds) % 2 == 0 else ["after", "before"]
                sample = {which: readers[which].read() for which in order}
                if all(s["journal_ranks"] == 4 for s in sample.values()):
                    rounds.append(sample)  # both reads saw 4 live journals
            job.wait()
            copier.join()
            killed = {which: [reader.read(static) for _ in range(repeats)]
                      for which, reader in readers.items()}
        finally:
            if job.poll() is None:
                job.kill()
                job.wait()
            for reader in readers.values():
                reader.close()
    errors = [s["error"] for r in rounds for s in r.values() if s["error"]]
    errors += [s["error"] for runs in killed.values() for s in runs if s["error"]]
    summary: dict[str, Any] = {"live_rounds": len(rounds), "errors": errors[:10]}
    for which in ("before", "after"):
        summary[which] = {
            "live_read_s": median([r[which]["s"] for r in rounds]) if rounds else None,
            "live_journal_mb": median([r[which]["journal_bytes"] / 1e6 for r in rounds]) if rounds else None,
            "live_points": median([r[which]["points"] for r in rounds]) if rounds else None,
            "killed_first_read_s": killed[which][0]["s"],
            "killed_repeat_read_s": median([s["s"] for s in killed[which][1:]]) if repeats > 1 else None,
            "killed_journal_mb": killed[which][0]["journal_bytes"] / 1e6,
        }
    summary["live_ratio_before_over_after"] = (
        median([r["before"]["s"] / r["after"]["s"] for r in rounds]) if rounds else None
    )
    if repeats > 1:
        summary["killed_repeat_ratio"] = (
            summary["before"]["killed_repeat_read_s"] / summary["after"]["killed_repeat_read_s"]
        )
    return {"baseline": baseline, "seconds": seconds, "steps_per_s": steps_per_s, "repeats": repeats,
            "summary": summary, "rounds": rounds, "killed": killed}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--serve"]:
        _serve(argv[1])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--steps-per-s", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline", default=DEFAULT_BASELINE, help="git ref measured as 'before'")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if shutil.which("mpiexec") is None:
        print("mpiexec not found (pip install mpich mpi4py)", file=sys.stderr)
        return 2
    started = time.perf_counter()
    res: dict[str, Any] = {"benchmark": "live_read", "machine": machine_info(), "argv": sys.argv}
    res.update(bench(args.seconds, args.steps_per_s, args.baseline, args.repeats))
    res["wall_s"] = time.perf_counter() - started
    write_json(args.out, res)
    print(json.dumps(res["summary"], indent=1), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
