"""Live-reading subject: one rank of an mpiexec job that logs for SECONDS, then ends.

usage: mpiexec -n N python live_job.py SAVE_DIR RUN_ID SECONDS [STEPS_PER_S]
Small rings and a 50 ms flush timer keep the journal growing all the time; a param every
200 steps.  Series: "loss"/"training" = step * 0.5, "acc"/"validation" = -step.
STEPS_PER_S (default 0: as fast as it can) paces the loop: a minute at full speed writes
~200 MB per rank, more than any training job logs and more than a reader's checks of every
point of every series can keep up with; a long soak paces itself.
"""

from __future__ import annotations

import sys
import time
import warnings

import yprov4ml_hpc as prov4ml


def main() -> None:
    save_dir, run_id, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    pace = 1.0 / float(sys.argv[4]) if len(sys.argv) > 4 and float(sys.argv[4]) > 0 else 0.0
    warnings.simplefilter("ignore")
    prov4ml.start_run("live", provenance_save_dir=save_dir, run_id=run_id, buffer_size=64,
                      flush_interval_s=0.05, system_metrics_interval_s=0.2)
    started = time.monotonic()
    deadline, step = started + seconds, 0
    while time.monotonic() < deadline:
        if pace and step % 16 == 0:
            ahead = started + step * pace - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        prov4ml.log_metric("loss", step * 0.5, context="training", step=step)
        prov4ml.log_metric("acc", -float(step), context="validation", step=step)
        step += 1
        if step % 200 == 0:
            prov4ml.log_param(f"p{step // 200}", step)
            time.sleep(0.001)
    prov4ml.end_run(finalize_timeout_s=60)


if __name__ == "__main__":
    main()
