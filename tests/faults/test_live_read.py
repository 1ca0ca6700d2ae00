"""Reading a job while it writes: never a false "damaged", never a disturbed writer.

A 4-rank ``mpiexec`` job logs continuously (small rings, a 50 ms flush timer, params); a
reader process runs load_run and reads every series of every rank again and again, with
HDF5 file locking on and off (``HDF5_USE_FILE_LOCKING``, read when HDF5 starts: hence a
process per setting), until the job has finalized.  What must hold: 0 problems reported in
all reads (running ranks are read through their journals, finished ones through their .h5,
the switch in between included), every series an exact prefix of what was logged, and the
job itself finishes with every rank ``finished`` and folded.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from faults_harness import SCRIPTS, clean_env

MPIEXEC = shutil.which("mpiexec")


def _live(tmp_path: Path, locking: str, seconds: float, steps_per_s: int = 0) -> dict[str, object]:
    if MPIEXEC is None:
        pytest.skip("mpiexec is not installed")
    run_id = f"live{locking}"
    job = subprocess.Popen([MPIEXEC, "-n", "4", sys.executable, str(SCRIPTS / "live_job.py"), str(tmp_path),
                            run_id, str(seconds), str(steps_per_s)], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, env=clean_env())
    try:
        env = {**clean_env(), "HDF5_USE_FILE_LOCKING": locking}
        reader_command = [sys.executable, str(SCRIPTS / "live_reader.py"), str(tmp_path / f"live_{run_id}"),
                          "4"]
        reader = subprocess.run(reader_command, capture_output=True, text=True, env=env,
                                timeout=seconds + 240, check=False)
        _, err = job.communicate(timeout=120)
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()
    assert job.returncode == 0, err[-3000:]
    assert reader.returncode == 0, reader.stderr[-3000:]
    result = json.loads(reader.stdout.strip().splitlines()[-1])
    print(f"locking={locking}: {result['live_reads']} live reads of {result['reads']} "
          f"({result['journal_reads']} rank reads through a journal) in {result['seconds']} s")
    return result


def _check(result: dict[str, object], min_live_reads: int) -> None:
    assert result["n_problems"] == 0 and result["bad_values"] == [], result
    # Live: at least one rank read through its journal (reads after the job folded don't count).
    assert int(result["live_reads"]) >= min_live_reads, result  # type: ignore[call-overload]
    assert result["final"] == {"statuses": ["finished"] * 4, "problems": [],
                               "files": [f"rank_{r:06d}.h5" for r in range(4)]}, result


@pytest.mark.parametrize("locking", ["TRUE", "FALSE"])
def test_live_reads_of_a_4_rank_job(tmp_path: Path, locking: str) -> None:
    """An 8 s job at 4,000 steps/s per rank: at least 20 live reads."""
    _check(_live(tmp_path, locking, seconds=8.0, steps_per_s=4000), min_live_reads=20)


@pytest.mark.slow
@pytest.mark.parametrize("locking", ["TRUE", "FALSE"])
def test_live_reads_of_a_4_rank_job_soak(tmp_path: Path, locking: str) -> None:
    """At least 250 live reads per setting (500 in all) of a 60 s job logging 4,000 steps/s per
    rank (2 series: 480,000 points a rank, a frame every ~8 ms per series)."""
    _check(_live(tmp_path, locking, seconds=60.0, steps_per_s=4000), min_live_reads=250)
