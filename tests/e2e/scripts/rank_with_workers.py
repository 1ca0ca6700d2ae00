"""Each rank of an mpiexec job starts a worker process (multiprocessing, ``spawn`` or ``fork``)
that calls start_run without rank= (upstream's dask example does this), then the ranks record
their own collective run.

usage: mpiexec -n N python rank_with_workers.py SAVE_DIR spawn|fork
"""

from __future__ import annotations

import multiprocessing
import sys
import warnings

import yprov4ml_hpc as prov


def worker(save_dir: str, tag: int) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = prov.start_run("worker", provenance_save_dir=save_dir, system_metrics_interval_s=0)
    assert any("worker of that rank" in str(w.message) for w in caught), [str(w.message) for w in caught]
    assert run.world_size == 1, run.world_size
    prov.log_metric("tag", float(tag), context="training", step=0)
    prov.end_run()


def main() -> None:
    save_dir, method = sys.argv[1], sys.argv[2]
    from mpi4py import MPI

    rank = MPI.COMM_WORLD.Get_rank()
    child = multiprocessing.get_context(method).Process(target=worker, args=(save_dir, rank))
    child.start()
    child.join(120)
    assert child.exitcode == 0, f"rank {rank}: worker exit code {child.exitcode}"
    prov.start_run("job", provenance_save_dir=save_dir, system_metrics_interval_s=0)
    prov.log_metric("loss", 1.0 + rank, step=0)
    run_dir = prov.end_run()
    print(f"rank {rank} run {run_dir}", flush=True)


if __name__ == "__main__":
    main()
