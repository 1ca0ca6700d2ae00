"""The package's exceptions and warnings.

Every error derives from :class:`Yprov4mlError` and also from the builtin it
matches, so ``except ValueError`` keeps working for callers who never heard of
this package.
"""

from __future__ import annotations

__all__ = [
    "ArtifactNotFoundError",
    "ConfigError",
    "ConfigTypeError",
    "DamagedRunError",
    "MergeError",
    "MissingDependencyError",
    "RunStateError",
    "SamplerUnavailableWarning",
    "SeriesNotFoundError",
    "StorageError",
    "Yprov4mlError",
    "Yprov4mlWarning",
]


class Yprov4mlError(Exception):
    """Base class of every error raised by yprov4ml_hpc."""


class RunStateError(Yprov4mlError, RuntimeError):
    """An API call came at the wrong moment (no active run, run already ended, ...)."""


class ConfigError(Yprov4mlError, ValueError):
    """An argument or environment variable has a value we cannot use."""


class ConfigTypeError(Yprov4mlError, TypeError):
    """An argument has a type we cannot use (a str where a number belongs, ...)."""


class SeriesNotFoundError(Yprov4mlError, KeyError):
    """``RunData.series``: the rank has no series of that name and context."""

    def __str__(self) -> str:  # KeyError's str() would quote the whole message
        return str(self.args[0]) if self.args else ""


class StorageError(Yprov4mlError, OSError):
    """The run directory or a rank file cannot be created, written or read."""


class ArtifactNotFoundError(Yprov4mlError, FileNotFoundError):
    """A path given to log_artifact/log_model does not exist."""


class DamagedRunError(StorageError):
    """A run directory or rank file is truncated, corrupt or of another schema."""


class MergeError(Yprov4mlError, RuntimeError):
    """Building the job's provenance from the rank files failed."""


class MissingDependencyError(Yprov4mlError, ImportError):
    """An optional dependency of the feature in use is not installed; the message names the extra."""


class Yprov4mlWarning(UserWarning):
    """Base class of every warning issued by yprov4ml_hpc."""


class SamplerUnavailableWarning(Yprov4mlWarning):
    """A background sampler (NVML, codecarbon, RAPL, ...) cannot run here and is skipped."""
