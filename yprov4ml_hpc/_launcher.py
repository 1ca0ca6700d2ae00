"""Who am I in the job: rank, world size, local rank, host, launcher and job id.

Detection order (DESIGN section 3): explicit ``rank=``/``comm=`` -> an MPI launcher's
environment or an already-initialised MPI, then mpi4py ``COMM_WORLD`` -> Slurm -> torchrun
-> singleton.  mpi4py is imported only when MPI is really in play, because importing
``mpi4py.MPI`` initialises MPI and the CLI must run on login nodes without it.
"""

from __future__ import annotations

import os
import socket
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import _constants as C
from ._errors import ConfigError, Yprov4mlWarning

__all__ = ["LaunchInfo", "detect_launch", "import_mpi"]


@dataclass(frozen=True)
class LaunchInfo:
    rank: int
    world_size: int
    local_rank: int
    local_size: int
    host: str
    launcher: str  # "explicit", "mpi", "mpi-env", "slurm", "torchrun" or "singleton"
    job_id: str | None = None
    comm: Any = None  # an mpi4py communicator when MPI is in play

    @property
    def is_node_leader(self) -> bool:
        """The node's lowest local rank measures node-wide things (codecarbon, node CPU)."""
        return self.local_rank == 0


def import_mpi() -> Any:
    """Import ``mpi4py.MPI`` or raise ConfigError naming the extra to install."""
    try:
        from mpi4py import MPI
    except (ImportError, RuntimeError) as exc:  # RuntimeError: mpi4py present, no MPI library
        raise ConfigError(
            f"MPI is needed here but mpi4py.MPI cannot be imported ({exc}); "
            'install it with: pip install "yprov4ml-hpc[mpi]" (and an MPI, e.g. pip install mpich)'
        ) from exc
    return MPI


def _first_int(env: Mapping[str, str], names: tuple[str, ...]) -> int | None:
    for name in names:
        raw = env.get(name)
        if raw is not None and raw.strip() != "":
            try:
                return int(raw)
            except ValueError as exc:
                raise ConfigError(
                    f"environment variable {name}={raw!r} is not an integer; unset or fix it"
                ) from exc
    return None


def _mpi_initialised() -> bool:
    module = sys.modules.get("mpi4py.MPI")
    return bool(module is not None and module.Is_initialized() and not module.Is_finalized())


def _slurm_job_id(env: Mapping[str, str]) -> str | None:
    job = env.get(C.SLURM_JOB_VAR)
    if not job:
        return None
    step = env.get(C.SLURM_STEP_VAR)
    return f"{job}.{step}" if step else job


def _torch_job_id(env: Mapping[str, str]) -> str | None:
    run_id = env.get(C.TORCH_RUN_ID_VAR)
    if not run_id or run_id == "none":
        return None
    restart = env.get("TORCHELASTIC_RESTART_COUNT")
    # An elastic restart reuses the run id; the restart count keeps the directories apart.
    return f"{run_id}.r{restart}" if restart and restart != "0" else run_id


def _from_comm(comm: Any, launcher: str, env: Mapping[str, str]) -> LaunchInfo:
    MPI = import_mpi()
    rank, size = comm.Get_rank(), comm.Get_size()
    node_comm = comm.Split_type(MPI.COMM_TYPE_SHARED, key=rank)
    try:
        local_rank, local_size = node_comm.Get_rank(), node_comm.Get_size()
    finally:
        node_comm.Free()
    job_id = _slurm_job_id(env)
    return LaunchInfo(rank, size, local_rank, local_size, socket.gethostname(), launcher, job_id, comm)


# A launcher's variables that say which rank a process is, and which job it belongs to.
_RANK_VARS = (*C.MPI_RANK_VARS, C.SLURM_RANK_VAR, C.TORCH_RANK_VAR)
_JOB_VARS = (C.SLURM_JOB_VAR, C.SLURM_STEP_VAR)


def _parent_environment() -> tuple[int, Mapping[str, str]] | None:
    """The parent's pid and environment when the parent is a Python process, else None.

    A rank's parent is the launcher's proxy (hydra_pmi_proxy, slurmstepd, prted, torchrun's
    agent) or a shell; a multiprocessing or dask worker's parent is the rank itself.
    """
    try:
        import psutil

        parent = psutil.Process(os.getppid())
        if "python" not in parent.name().lower():
            return None
        return parent.pid, parent.environ()
    except Exception:  # noqa: BLE001 - no parent to read (gone, not permitted): nothing inherited
        return None


def _drop_inherited_rank(env: Mapping[str, str]) -> Mapping[str, str]:
    """A worker process started by a rank (multiprocessing, dask) inherits that rank's launcher
    variables; they are not its own.  Taken at face value, the worker would take its parent's
    rank and directory, and join MPI itself: MPICH's MPI_Init then aborts (spawn) or corrupts the
    parent's connection and hangs (fork).  Drop what the worker's Python parent has too, so it
    records as a run of its own (or as a torchrun worker when it has a RANK of its own)."""
    present = [name for name in _RANK_VARS if env.get(name)]
    if not present:
        return env
    parent = _parent_environment()
    if parent is None:
        return env
    pid, parent_env = parent
    inherited = [name for name in present if parent_env.get(name) == env[name]]
    if not inherited:
        return env
    warnings.warn(
        f"this process (pid {os.getpid()}) inherited {', '.join(f'{n}={env[n]}' for n in inherited)} "
        f"from its parent Python process (pid {pid}): it is a worker of that rank, not a rank of the "
        "job, so it records as a run of its own (pass rank= and run_id= to start_run to place it "
        "in the job's run)",
        Yprov4mlWarning,
        stacklevel=4,
    )
    return {k: v for k, v in env.items() if k not in inherited and k not in _JOB_VARS}


def detect_launch(
    rank: int | None = None, comm: Any = None, env: Mapping[str, str] | None = None
) -> LaunchInfo:
    """Work out this process's place in the job (see the module docstring for the order)."""
    env = os.environ if env is None else env
    host = socket.gethostname()
    if comm is not None:
        return _from_comm(comm, "mpi", env)
    if rank is not None:
        if isinstance(rank, bool) or not isinstance(rank, int) or rank < 0:
            raise ConfigError(f"rank must be a non-negative int, got {rank!r}")
        size = (
            _first_int(env, C.MPI_SIZE_VARS)
            or _first_int(env, (C.SLURM_SIZE_VAR, C.TORCH_SIZE_VAR))
            or rank + 1
        )
        local = _first_int(env, (*C.MPI_LOCAL_RANK_VARS, C.SLURM_LOCAL_RANK_VAR, C.TORCH_LOCAL_RANK_VAR))
        local_size = _first_int(env, (*C.MPI_LOCAL_SIZE_VARS, C.TORCH_LOCAL_SIZE_VAR))
        return LaunchInfo(
            rank,
            max(size, rank + 1),
            local or 0,
            local_size or 1,
            host,
            "explicit",
            _slurm_job_id(env) or _torch_job_id(env),
        )

    own_env = _drop_inherited_rank(env) if env is os.environ else env
    if own_env is not env:  # a worker of a rank: never its parent's MPI (even one a fork copied)
        env = own_env
        mpi_live = False
    else:
        mpi_live = _mpi_initialised()
    env_rank = _first_int(env, C.MPI_RANK_VARS)
    if env_rank is not None or mpi_live:
        try:
            MPI = import_mpi()
        except ConfigError as exc:
            if env_rank is None:
                raise
            warnings.warn(
                f"{exc}; falling back to the launcher's environment (no collective finalize)",
                Yprov4mlWarning,
                stacklevel=3,
            )
        else:
            return _from_comm(MPI.COMM_WORLD, "mpi", env)
        size = _first_int(env, C.MPI_SIZE_VARS) or 1
        return LaunchInfo(
            env_rank,
            size,
            _first_int(env, C.MPI_LOCAL_RANK_VARS) or 0,
            _first_int(env, C.MPI_LOCAL_SIZE_VARS) or 1,
            host,
            "mpi-env",
            _slurm_job_id(env),
        )

    # Inside an srun step (SLURM_STEP_ID set); a batch script alone is a singleton.
    slurm_rank = _first_int(env, (C.SLURM_RANK_VAR,))
    if slurm_rank is not None and env.get(C.SLURM_STEP_VAR):
        size = _first_int(env, ("SLURM_STEP_NUM_TASKS", C.SLURM_SIZE_VAR)) or 1
        local = _first_int(env, (C.SLURM_LOCAL_RANK_VAR,)) or 0
        local_size = _slurm_tasks_on_node(env)
        return LaunchInfo(slurm_rank, size, local, local_size, host, "slurm", _slurm_job_id(env))

    torch_rank = _first_int(env, (C.TORCH_RANK_VAR,))
    torch_size = _first_int(env, (C.TORCH_SIZE_VAR,))
    if torch_rank is not None and torch_size is not None:
        return LaunchInfo(
            torch_rank,
            torch_size,
            _first_int(env, (C.TORCH_LOCAL_RANK_VAR,)) or 0,
            _first_int(env, (C.TORCH_LOCAL_SIZE_VAR,)) or 1,
            host,
            "torchrun",
            _torch_job_id(env),
        )
    return LaunchInfo(0, 1, 0, 1, host, "singleton", _slurm_job_id(env))


def _slurm_tasks_on_node(env: Mapping[str, str]) -> int:
    """SLURM_TASKS_PER_NODE looks like '4(x2),3'; take the first node's count as a fair guess."""
    raw = env.get("SLURM_STEP_TASKS_PER_NODE") or env.get("SLURM_TASKS_PER_NODE") or "1"
    head = raw.split(",")[0].split("(")[0]
    try:
        return max(int(head), 1)
    except ValueError:
        return 1
