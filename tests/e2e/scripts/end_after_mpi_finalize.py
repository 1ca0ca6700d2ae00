"""A job whose MPI is finalized (by the user or a framework) before the provenance ends.

    mpiexec -n N python end_after_mpi_finalize.py SAVE_DIR RUN_ID {end_run|with}

Each rank logs 20 losses, calls MPI.Finalize(), then ends the run (end_run() or the end of a
``with start_run(...)`` block) and prints one JSON line: its rank, the run directory it got
back and the warnings it saw.
"""

from __future__ import annotations

import json
import sys
import warnings

from mpi4py import MPI

import yprov4ml_hpc as prov4ml

STEPS = 20


def main() -> None:
    save_dir, run_id, how = sys.argv[1], sys.argv[2], sys.argv[3]
    rank = MPI.COMM_WORLD.Get_rank()
    options = {"provenance_save_dir": save_dir, "run_id": run_id, "finalize_timeout_s": 60}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if how == "with":
            with prov4ml.start_run("fin", **options, system_metrics_interval_s=0) as run:
                for step in range(STEPS):
                    prov4ml.log_metric("loss", 1.0 / (1 + step), context="training", step=step)
                MPI.Finalize()
            run_dir = run.run_dir
        else:
            prov4ml.start_run("fin", **options, system_metrics_interval_s=0)
            for step in range(STEPS):
                prov4ml.log_metric("loss", 1.0 / (1 + step), context="training", step=step)
            MPI.Finalize()
            run_dir = prov4ml.end_run()
    messages = [str(w.message) for w in caught if "NVML" not in str(w.message)]
    print(json.dumps({"rank": rank, "run_dir": str(run_dir), "warnings": messages}), flush=True)


if __name__ == "__main__":
    main()
