#!/usr/bin/env bash
# The whole test suite: unit + e2e + faults under pytest, then tests/mpi under mpiexec at 2 and
# 4 ranks; faults, e2e and tests/mpi (2 ranks) again with the journal writer thread.  Every
# MPI run has an outer timeout: a deadlocked rank can never hang CI.
# usage: bash tests/run_all.sh [extra pytest args for the non-MPI part]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
BIN=$("$PY" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
MPIEXEC=${MPIEXEC:-$BIN/mpiexec}
[ -x "$MPIEXEC" ] || MPIEXEC=$(command -v mpiexec)
export PATH="$BIN:$PATH"

status=0
"$PY" -m pytest "$@" || status=$?

# The same fault and end-to-end suites with the journal written by the rank's writer thread
# (start_run(writer="thread"); the default is the writer process): same promises.
echo "== tests/faults and tests/e2e with YPROV4ML_HPC_WRITER=thread =="
YPROV4ML_HPC_WRITER=thread "$PY" -m pytest -q -p no:cacheprovider tests/faults tests/e2e || status=$?

for n in 2 4; do
  echo "== tests/mpi at $n ranks =="
  if ! timeout 600 "$MPIEXEC" -n "$n" "$PY" -m mpi4py -m pytest -x -q -p no:cacheprovider \
      --timeout=240 --timeout-method=thread tests/mpi; then
    echo "tests/mpi FAILED at $n ranks"
    status=1
  fi
done
echo "== tests/mpi at 2 ranks with YPROV4ML_HPC_WRITER=thread =="
if ! YPROV4ML_HPC_WRITER=thread timeout 600 "$MPIEXEC" -n 2 "$PY" -m mpi4py -m pytest -x -q -p no:cacheprovider \
    --timeout=240 --timeout-method=thread tests/mpi; then
  echo "tests/mpi FAILED at 2 ranks with the writer thread"
  status=1
fi
exit $status
