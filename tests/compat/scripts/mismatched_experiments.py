"""Two ranks of one job passing different experiment names (a bug in user code)."""

import warnings

from mpi4py import MPI

import yprov4ml_hpc as yprov4ml

rank = MPI.COMM_WORLD.rank
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    yprov4ml.start_run(f"exp_rank{rank}", provenance_save_dir="prov")
print(f"rank {rank} warned: {[str(w.message) for w in caught if 'rank 0 named the run' in str(w.message)]}")
yprov4ml.log_metric("x", float(rank))
yprov4ml.end_run()
