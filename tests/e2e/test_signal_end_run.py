"""end_run() from the user's own signal handler (Slurm's --signal=USR1@60 pattern), then SIGTERM.

buffer_size=1 makes every log_metric hand a ring to the writer (and often wait for it), so the
signal lands inside those hand-offs and waits.  What must hold: end_run completes inside the
handler (no deadlock), the training loop then gets RunStateError, SIGTERM afterwards ends the
process at once, and the rank file is complete: folded, finished, every point logged before
end_run began (at most the one or two points logged after the final drain are not recorded).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import yprov4ml_hpc as prov4ml

SCRIPT = """
import signal, sys, time, warnings
warnings.simplefilter("ignore")
import yprov4ml_hpc as prov4ml

def on_usr1(signum, frame):
    prov4ml.end_run()
    print("ENDED", flush=True)

signal.signal(signal.SIGUSR1, on_usr1)
run = prov4ml.start_run("usr1", provenance_save_dir=sys.argv[1], buffer_size=1, flush_interval_s=0,
                        system_metrics_interval_s=0)
print(run.run_dir, flush=True)
print("READY", flush=True)
step = 0
try:
    while True:
        prov4ml.log_metric("loss", step * 0.5, context="training", step=step)
        step += 1
except prov4ml.RunStateError as exc:
    print("STOPPED", step, flush=True)
time.sleep(120)  # wait for SIGTERM
"""


@pytest.mark.parametrize("delay", [0.3, 1.0])
def test_end_run_in_a_usr1_handler_then_sigterm(tmp_path: Path, delay: float) -> None:
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(tmp_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    try:
        run_dir = Path(proc.stdout.readline().strip())
        assert proc.stdout.readline().strip() == "READY"
        time.sleep(delay)
        proc.send_signal(signal.SIGUSR1)
        lines = [proc.stdout.readline().strip() for _ in range(2)]  # ENDED, STOPPED n (any order)
        assert "ENDED" in lines, (lines, proc.stderr.read() if proc.stderr else "")
        (stopped,) = [line for line in lines if line.startswith("STOPPED")]
        logged = int(stopped.split()[1])
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)  # SIGTERM ends it promptly: our handler was uninstalled by end_run
        assert proc.returncode == -signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert sorted(p.name for p in (run_dir / "ranks").iterdir()) == ["rank_000000.h5"]
    data = prov4ml.load_run(run_dir)
    assert data.problems == [] and [r.status for r in data.ranks] == ["finished"]
    steps = data.series("loss", "training", 0).step
    assert logged - 2 <= len(steps) <= logged, (len(steps), logged)
    np.testing.assert_array_equal(steps, np.arange(len(steps)))
    assert (run_dir / "summary.json").exists()  # the handler's end_run also finalized
