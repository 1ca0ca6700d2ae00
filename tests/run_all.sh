#!/usr/bin/env bash
# The whole test suite: unit + e2e + faults under pytest, then tests/mpi under mpiexec at 2 and
# 4 ranks.  Every MPI run has an outer timeout: a deadlocked rank can never hang CI.
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

for n in 2 4; do
  echo "== tests/mpi at $n ranks =="
  if ! timeout 600 "$MPIEXEC" -n "$n" "$PY" -m mpi4py -m pytest -x -q -p no:cacheprovider \
      --timeout=240 --timeout-method=thread tests/mpi; then
    echo "tests/mpi FAILED at $n ranks"
    status=1
  fi
done
exit $status
