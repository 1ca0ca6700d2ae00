"""The enums yProv4ML scripts use: Contexts, MetricsType, CompressorType, LoggingItemKind, FoldOperation.

Their members have upstream's names and string values, so ``Contexts.TRAINING``,
``Context.TRAINING`` and the string ``"Training"`` all land in one context (see
:func:`yprov4ml_hpc._context.context_name`).
"""

from __future__ import annotations

import enum
import operator
from collections.abc import Callable

__all__ = ["CompressorType", "Contexts", "FoldOperation", "LoggingItemKind", "MetricsType"]


class Contexts(str, enum.Enum):
    """prov4ml 1.x/yProv4ML 2.x contexts, with upstream's values ("TRAINING", ...)."""

    TRAINING = "TRAINING"
    VALIDATION = "VALIDATION"
    TESTING = "TESTING"
    EVALUATION = "EVALUATION"
    INFERENCE = "INFERENCE"
    DATASETS = "DATASETS"
    MODELS = "MODELS"

    def __str__(self) -> str:
        return self.value


class _PrintsLikeUpstream(str, enum.Enum):
    """Compares equal to its string value (``MetricsType.CSV == "csv"``), but prints as
    upstream's plain Enum does (``f"{MetricsType.CSV}"`` is ``"MetricsType.CSV"``): scripts build
    run and file names from it."""

    def __str__(self) -> str:
        return f"{type(self).__name__}.{self.name}"

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


class MetricsType(_PrintsLikeUpstream):
    """yProv4ML's metric file formats.  Here every series is in HDF5; CSV is also written."""

    CSV = "csv"
    ZARR = "zarr"
    NETCDF = "netcdf"


class CompressorType(enum.Enum):
    """yProv4ML's compressors for zarr/netCDF files: accepted, and ignored (the HDF5 layout is fixed)."""

    NONE = None
    ZIP = "zip"
    BLOSC_ZSTD = "blosc_zstd"
    LZ4 = "l4"


class LoggingItemKind(_PrintsLikeUpstream):
    """yProv4ML 2.x's kinds of logged items (also the ``kind`` strings of the itwinai logger)."""

    METRIC = "metric"
    FLOPS_PER_BATCH = "flops_pb"
    FLOPS_PER_EPOCH = "flops_pe"
    SYSTEM_METRIC = "system"
    CARBON_METRIC = "carbon"
    EXECUTION_TIME = "execution_time"
    MODEL_VERSION = "model_version"
    FINAL_MODEL_VERSION = "model_version_final"
    PARAMETER = "param"


class FoldOperation:
    """How :func:`register_final_metric` folds each logged value into the final one.

    As in prov4ml, the members are plain two-argument functions (``FoldOperation.ADD(1, 2)``).
    """

    ADD: Callable[[float, float], float] = staticmethod(operator.add)
    SUBTRACT: Callable[[float, float], float] = staticmethod(operator.sub)
    MULTIPLY: Callable[[float, float], float] = staticmethod(operator.mul)
    MIN: Callable[[float, float], float] = staticmethod(min)
    MAX: Callable[[float, float], float] = staticmethod(max)

    @classmethod
    def name_of(cls, fold: object) -> str:
        """'ADD', 'MIN', ... for a member; the function's own name for any other callable."""
        for name in ("ADD", "SUBTRACT", "MULTIPLY", "MIN", "MAX"):
            if getattr(cls, name) is fold:
                return name
        return getattr(fold, "__name__", type(fold).__name__)
