"""Short JSON-ready descriptions of the things a run records: library versions, models, datasets."""

from __future__ import annotations

import platform
import sys

import h5py
import numpy as np

from ._version import __version__

__all__ = ["dataset_info", "library_versions", "model_info"]


def library_versions() -> dict[str, str]:
    versions = {
        "yprov4ml_hpc": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "h5py": h5py.version.version,
        "hdf5": h5py.version.hdf5_version,
    }
    mpi = sys.modules.get("mpi4py")
    if mpi is not None:
        versions["mpi4py"] = str(getattr(mpi, "__version__", "?"))
    return versions


def model_info(model: object) -> dict[str, object]:
    info: dict[str, object] = {"type": f"{type(model).__module__}.{type(model).__qualname__}"}
    parameters = getattr(model, "parameters", None)
    if callable(parameters):
        try:
            info["parameters"] = int(sum(int(p.numel()) for p in parameters()))
        except (TypeError, AttributeError, RuntimeError):
            pass
    return info


def dataset_info(dataset: object) -> dict[str, object]:
    info: dict[str, object] = {}
    try:
        info["length"] = len(dataset)  # type: ignore[arg-type]
    except TypeError:
        pass
    for attr in ("batch_size", "num_workers", "drop_last", "pin_memory"):
        value = getattr(dataset, attr, None)
        if isinstance(value, (bool, int, float, str)):
            info[attr] = value
    inner = getattr(dataset, "dataset", None)  # torch DataLoader
    if inner is not None:
        info["dataset_type"] = type(inner).__name__
        try:
            info["dataset_length"] = len(inner)
        except TypeError:
            pass
    sampler = getattr(dataset, "sampler", None)
    if sampler is not None:
        info["sampler"] = type(sampler).__name__
    return info
