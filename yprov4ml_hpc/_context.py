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

    @staticmethod
    def get_context_from_string(context: str) -> Context:
        """yProv4ML 2.x: the member for ``"training"``, ``"TRAINING"`` or ``"Context.TRAINING"``."""
        try:
            return Context(context_name(context))
        except ValueError:
            raise ConfigError(f"Not a context: {context!r}") from None


# yProv4ML writes the same phase as ``Context.TRAINING`` ("TRAINING" in 2.x), "Training"
# (3.x examples) or "training": a script mixing them must get ONE context, so the names of
# the well-known contexts are matched without regard to case and stored in lower case.
_WELL_KNOWN = {member.value: member.value for member in Context}


def context_name(context: object) -> str:
    """Normalise a user's context (enum, string or None) to the string stored on disk."""
    if context is None:
        return DEFAULT_CONTEXT
    if isinstance(context, enum.Enum):
        value = context.value
        context = value if isinstance(value, str) else str(context.name)
    if isinstance(context, str):
        if not context:
            raise ConfigError("context must not be empty; pass None for the default context")
        if "\x00" in context:
            raise ConfigError(f"context {context!r} contains a NUL character, which HDF5 cannot store")
        check_utf8("context", context)
        if context.startswith("Context.") or context.startswith("Contexts."):
            context = context.split(".", 1)[1]  # str() of a yProv4ML 2.x enum member
        return _WELL_KNOWN.get(context.lower(), context)
    raise ConfigTypeError(
        f"context must be a str, a Context or None, got {type(context).__name__} ({context!r}); "
        "yProv4ML 2.x and 3.x accept the same"
    )
