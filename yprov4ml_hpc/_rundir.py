"""Agreeing on one run directory per job, and never sharing it with another job.

Order (DESIGN section 3): explicit ``run_id`` -> rank 0 chooses and broadcasts (MPI) ->
the launcher's job id -> a fresh directory.  Directory creation is ``os.mkdir``, which is
atomic, so two jobs starting at the same instant can never both win the same name.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import secrets
import warnings
from collections.abc import Iterator
from pathlib import Path

from ._constants import ARTIFACTS_DIRNAME, RANKS_DIRNAME
from ._errors import ConfigError, StorageError, Yprov4mlWarning
from ._launcher import LaunchInfo

__all__ = ["check_label", "create_run_dir", "fresh_run_id", "next_counter", "run_dir_name"]

_SAFE_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
_FRESH_ATTEMPTS = 20
_COUNTER_ATTEMPTS = 1000  # processes racing for <experiment>_<N> in one save directory

# How many runs this process has started with a launcher-derived id: a script that runs two
# experiments in one job step must not put the second into the first one's directory.
_launcher_runs_started: dict[str, int] = {}


def check_label(kind: str, value: object) -> str:
    """Experiment names and run ids become directory names: keep them to a safe alphabet."""
    if not isinstance(value, str) or not _SAFE_LABEL.match(value) or value in {".", ".."}:
        raise ConfigError(
            f"{kind} {value!r} is not usable as a directory name; use 1-128 letters, digits, "
            "'.', '_', '+' or '-', starting with a letter or digit"
        )
    return value


def fresh_run_id() -> str:
    """A sortable, practically unique id: UTC time plus 24 random bits."""
    now = _dt.datetime.now(_dt.UTC)
    return f"{now:%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


def run_dir_name(experiment: str, run_id: str) -> str:
    return f"{experiment}_{run_id}"


def _prepare(save_dir: Path) -> None:
    try:
        save_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(
            f"cannot create provenance_save_dir {save_dir}: {exc.strerror or exc}; "
            "pass a writable provenance_save_dir"
        ) from exc
    if not os.access(save_dir, os.W_OK | os.X_OK):
        raise StorageError(
            f"provenance_save_dir {save_dir} is not writable; pass a writable provenance_save_dir"
        )


def _mkdir_new(path: Path) -> None:
    """Create ``path`` and its subfolders; FileExistsError if another job has it."""
    os.mkdir(path)
    (path / RANKS_DIRNAME).mkdir()
    (path / ARTIFACTS_DIRNAME).mkdir()


def next_counter(save_dir: Path, experiment: str) -> int:
    """yProv4ML's run number: one more than the highest ``<experiment>_<N>`` in ``save_dir``."""
    prefix = f"{experiment}_"
    highest = -1
    try:
        names = os.listdir(save_dir)
    except OSError:
        return 0
    for name in names:
        tail = name[len(prefix) :] if name.startswith(prefix) else ""
        if tail.isascii() and tail.isdigit():
            highest = max(highest, int(tail))
    return highest + 1


def _counter_ids(save_dir: Path, experiment: str) -> Iterator[str]:
    """``0``, ``1``, ...: rescanned after each lost race, so N only ever counts up."""
    for _ in range(_COUNTER_ATTEMPTS):
        yield str(next_counter(save_dir, experiment))


def _candidate_ids(save_dir: Path, experiment: str, job_id: str | None) -> Iterator[str]:
    """The launcher's job id (``4242.0``, ``4242.0-2``, ...), else upstream's counter N."""
    if job_id is not None and _SAFE_LABEL.match(job_id):
        yield job_id
        yield from (f"{job_id}-{n}" for n in range(2, _FRESH_ATTEMPTS + 1))
    else:
        yield from _counter_ids(save_dir, experiment)
    yield from (fresh_run_id() for _ in range(_FRESH_ATTEMPTS))


def _claim_fresh(save_dir: Path, experiment: str, job_id: str | None = None) -> tuple[str, Path]:
    """Claim a new directory: the job id when there is one, else ``<experiment>_<N>``.

    ``os.mkdir`` is atomic: of two processes trying the same N one gets FileExistsError,
    rescans and tries the next N, so no two processes ever share a directory.
    """
    for run_id in _candidate_ids(save_dir, experiment, job_id):
        path = save_dir / run_dir_name(experiment, run_id)
        try:
            _mkdir_new(path)
        except FileExistsError:
            continue
        return run_id, path
    raise StorageError(f"could not create a fresh run directory under {save_dir}")


def _claim_explicit(save_dir: Path, experiment: str, run_id: str) -> Path:
    path = save_dir / run_dir_name(experiment, run_id)
    try:
        _mkdir_new(path)
    except FileExistsError as exc:
        raise ConfigError(
            f"run directory {path} already exists (run_id={run_id!r}); pass another run_id, "
            "or leave run_id unset to get a fresh one"
        ) from exc
    return path


def _root_choose(
    save_dir: Path, experiment: str, run_id: str | None, job_id: str | None
) -> tuple[str, Path]:
    _prepare(save_dir)
    if run_id is not None:
        return run_id, _claim_explicit(save_dir, experiment, run_id)
    return _claim_fresh(save_dir, experiment, job_id)


def create_run_dir(
    save_dir: Path, experiment: str, run_id: str | None, launch: LaunchInfo
) -> tuple[str, Path]:
    """Return ``(run_id, run_dir)``, the same on every rank of the job."""
    if run_id is not None:
        check_label("run_id", run_id)
    save_dir = save_dir.absolute()
    if launch.comm is not None and launch.world_size > 1:
        # Rank 0 chooses; an error there is broadcast so every rank raises the same one.
        result: tuple[str, Path] | Exception
        if launch.rank == 0:
            try:
                result = _root_choose(save_dir, experiment, run_id, launch.job_id)
            except (StorageError, ConfigError) as exc:
                result = exc
        else:
            result = RuntimeError("placeholder")  # replaced by the broadcast
        result = launch.comm.bcast(result, root=0)
        if isinstance(result, Exception):
            raise result
        if result[1].name != run_dir_name(experiment, result[0]):
            warnings.warn(
                f"rank {launch.rank} started experiment {experiment!r} but rank 0 named the run "
                f"{result[1].name!r}: this rank records into rank 0's directory, and the merged "
                "summary lists the mismatch under 'problems'; pass the same experiment_name on every rank",
                Yprov4mlWarning,
                stacklevel=4,
            )
        return result
    if launch.world_size == 1:
        return _root_choose(save_dir, experiment, run_id, launch.job_id)

    # Several ranks and no MPI: every rank derives the same name from the launcher.
    if run_id is None:
        if launch.job_id is None:
            raise ConfigError(
                f"{launch.world_size} ranks were detected ({launch.launcher}) but no MPI and no "
                "job id to agree on a run directory; pass run_id=... (the same on every rank) "
                'or install mpi4py: pip install "yprov4ml-hpc[mpi]"'
            )
        count = _launcher_runs_started.get(launch.job_id, 0) + 1
        _launcher_runs_started[launch.job_id] = count
        run_id = launch.job_id if count == 1 else f"{launch.job_id}-{count}"
        check_label("run_id", run_id)
    _prepare(save_dir)
    path = save_dir / run_dir_name(experiment, run_id)
    try:
        for sub in (path, path / RANKS_DIRNAME, path / ARTIFACTS_DIRNAME):
            sub.mkdir(exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create run directory {path}: {exc}") from exc
    return run_id, path
