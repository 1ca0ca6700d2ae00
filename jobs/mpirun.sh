#!/bin/bash
# Run a training script under mpirun/mpiexec (a workstation, a cloud VM, a cluster without
# Slurm), then look at its provenance.
#
#   bash jobs/mpirun.sh                 # 4 ranks of examples/quickstart_mpi.py
#   NP=8 SCRIPT=train.py bash jobs/mpirun.sh --epochs 3
#
# EDIT: NP (ranks; one per GPU on a GPU machine), SCRIPT, PROV_DIR, MPIRUN.
set -euo pipefail
NP=${NP:-4}
SCRIPT=${SCRIPT:-examples/quickstart_mpi.py}
PROV_DIR=${PROV_DIR:-prov}
MPIRUN=${MPIRUN:-mpiexec}     # pip's mpich gives `mpiexec`; Open MPI as root needs the flags below
EXTRA=()
if "$MPIRUN" --version 2>&1 | grep -qi "open mpi"; then
    # Open MPI refuses root and more ranks than cores unless told; harmless otherwise.
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    EXTRA=(--oversubscribe)
fi

# The outer timeout keeps a deadlocked job from running forever; the collector's own
# finalize never waits longer than finalize_timeout_s for a dead rank.
timeout "${TIMEOUT:-3600}" "$MPIRUN" "${EXTRA[@]}" -n "$NP" python "$SCRIPT" --save-dir "$PROV_DIR" "$@"

# The newest run directory is the one this job wrote.
run=$(ls -td "$PROV_DIR"/*/ | head -n 1)
yprov4ml-hpc summary "$run"
yprov4ml-hpc report "$run" || echo "report skipped (pip install \"yprov4ml-hpc[plot]\" for figures)"
