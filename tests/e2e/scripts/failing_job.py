"""Failure-path subject: a run that fails or forgets end_run, as one process or under mpiexec.

usage: failing_job.py SAVE_DIR MODE FAILING_RANK [FINALIZE_TIMEOUT_S (default 5)]
MODE: with-raise (an exception leaves the `with start_run(...)` block on FAILING_RANK),
      uncaught (FAILING_RANK raises outside any `with`, no end_run),
      no-end (every rank returns without end_run).
Ranks other than FAILING_RANK end normally (end_run, or leaving the `with` block).
Prints RUN_DIR <path> first.
"""

from __future__ import annotations

import sys

import yprov4ml_hpc as prov4ml


def main() -> None:
    save_dir, mode, failing = sys.argv[1], sys.argv[2], int(sys.argv[3])
    timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 5.0
    options = {"provenance_save_dir": save_dir, "finalize_timeout_s": timeout, "system_metrics_interval_s": 0}
    if mode == "with-raise":
        with prov4ml.start_run("fail", run_id="job", **options) as run:
            print(f"RUN_DIR {run.run_dir}", flush=True)
            for step in range(20):
                prov4ml.log_metric("loss", 1.0 / (step + 1), context="training", step=step)
            if run.rank == failing:
                raise RuntimeError("training crashed")
        return
    run = prov4ml.start_run("fail", run_id="job", **options)
    print(f"RUN_DIR {run.run_dir}", flush=True)
    prov4ml.log_param("lr", 0.1)
    for step in range(20):
        prov4ml.log_metric("loss", 1.0 / (step + 1), context="training", step=step)
    if mode == "uncaught" and run.rank == failing:
        raise RuntimeError("training crashed")
    if mode == "no-end":
        return
    prov4ml.end_run()


if __name__ == "__main__":
    main()
