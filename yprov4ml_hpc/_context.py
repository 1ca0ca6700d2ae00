"""Contexts: the phase of a job a metric belongs to (training, validation, ...)."""

from __future__ import annotations

import enum

from . import _constants as C
from ._constants import DEFAULT_CONTEXT
from ._errors import ConfigError, ConfigTypeError
from ._names import check_utf8

__all__ = ["Context", "context_name"]


class Context(str, enum.Enum):
    """The yProv4ML contexts; any other string is a valid context too."""

    TRAINING = "training"
    VALIDATION = "validation"
    TESTING = "testing"
    EVALUATION = "evaluation"
    INFERENCE = "inference"
    DATASETS = "datasets"
    MODELS = "models"
    SYSTEM = C.SYSTEM_CONTEXT
    ENERGY = C.ENERGY_CONTEXT
    GPU = C.GPU_CONTEXT

    def __str__(self) -> str:
        return self.value


def context_name(context: object) -> str:
    """Normalise a user's context (enum, string or None) to the string stored on disk."""
    if context is None:
        return DEFAULT_CONTEXT
    if isinstance(context, enum.Enum):
        value = context.value
        return value if isinstance(value, str) else str(context.name).lower()
    if isinstance(context, str):
        if not context:
            raise ConfigError("context must not be empty; pass None for the default context")
        if "\x00" in context:
            raise ConfigError(f"context {context!r} contains a NUL character, which HDF5 cannot store")
        check_utf8("context", context)
        return context
    raise ConfigTypeError(
        f"context must be a str, a Context or None, got {type(context).__name__} ({context!r})"
    )
