"""Checking and interpreting yProv4ML's ``start_run`` options (types, CSV wish, run id, rank)."""

from __future__ import annotations

import os
import warnings

from .. import _constants as C
from .._errors import ConfigError, ConfigTypeError, Yprov4mlWarning
from ._layouts import check_type, user_stacklevel

__all__ = ["check_start_types", "launcher_rank", "metrics_file_type_wants_csv", "run_id_from"]


def check_start_types(
    collect_all_processes: object,
    save_after_n_logs: object,
    rank: object,
    csv_separator: object,
    disable_codecarbon: object,
) -> None:
    both = "yProv4ML 2.0.x and 3.2.x"
    check_type("start_run", "collect_all_processes", collect_all_processes, (bool,), both)
    check_type("start_run", "save_after_n_logs", save_after_n_logs, (int,), both)
    check_type("start_run", "rank", rank, (int,), both)
    check_type("start_run", "csv_separator", csv_separator, (str,), both)
    check_type("start_run", "disable_codecarbon", disable_codecarbon, (bool,), "yProv4ML 2.0.x")
    if isinstance(csv_separator, str) and (len(csv_separator) != 1 or csv_separator in "\n\r\"."):
        raise ConfigError(
            f"csv_separator must be one character other than a newline or quote, got {csv_separator!r}"
        )


def launcher_rank() -> int | None:
    """The rank a launcher (mpiexec, srun, torchrun) gave this process, if any."""
    from .._launcher import _first_int

    for names in (C.MPI_RANK_VARS, (C.SLURM_RANK_VAR,), (C.TORCH_RANK_VAR,)):
        found = _first_int(os.environ, names)
        if found is not None:
            return found
    return None


def metrics_file_type_wants_csv(value: object) -> bool:
    """True when upstream's CSV files are wanted; other formats warn once and are not written."""
    if value is None:
        return False
    text = getattr(value, "value", value)
    if not isinstance(text, str):
        raise ConfigTypeError(
            f"start_run(metrics_file_type=...) must be 'csv', 'zarr', 'netcdf' or a MetricsType as in "
            f"yProv4ML 2.0.x and 3.2.x, got {type(value).__name__} {value!r}"
        )
    kind = text.lower().lstrip(".")
    if kind == "csv":
        return True
    if kind in ("zarr", "netcdf", "nc"):
        warnings.warn(
            f"metrics_file_type={text!r}: series are stored in HDF5 (ranks/*.h5) only; zarr and "
            "netCDF copies are not written (use metrics_file_type='csv' for CSV copies)",
            Yprov4mlWarning,
            stacklevel=user_stacklevel(),
        )
        return False
    raise ConfigError(f"metrics_file_type must be 'csv', 'zarr' or 'netcdf', got {value!r}")


def run_id_from(run_id: str | None, use_run_id: object) -> str | None:
    if use_run_id is None:
        return run_id
    if run_id is not None:
        raise ConfigError(f"pass run_id={run_id!r} or use_run_id={use_run_id!r}, not both")
    if isinstance(use_run_id, bool) or not isinstance(use_run_id, (int, str)):
        raise ConfigTypeError(
            f"start_run(use_run_id=...) must be an int as in yProv4ML 3.2.x (or a str), got "
            f"{type(use_run_id).__name__} {use_run_id!r}"
        )
    return str(use_run_id)
