"""yProv4ML's tracking wrappers, recording into the calling rank's metric series.

``ProvenanceTrackedFunction`` needs no torch; the two model wrappers subclass
``torch.nn.Module`` and live in :mod:`._torch_models`, imported only when first used.
"""

from __future__ import annotations

import warnings
from typing import Any

from .. import _api
from .._errors import ConfigTypeError, Yprov4mlWarning

__all__ = ["ProvenanceTrackedFunction"]


class ProvenanceTrackedFunction:
    """Call ``func`` and log each scalar result as metric ``type(func).__name__`` (e.g. ``MSELoss``).

    The step counts the calls (0, 1, 2, ...), as upstream; ``context`` is the metric's
    context.  A result with more than one element is returned but not logged (warned once).
    """

    def __init__(self, func: Any, context: object = None) -> None:
        if not callable(func):
            raise ConfigTypeError(f"ProvenanceTrackedFunction(func=...) must be callable, got {func!r}")
        self.fn = func
        self.context = context
        self.source = type(func).__name__
        self.inc = 0
        self._warned = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        result = self.fn(*args, **kwargs)
        value = _scalar(result)
        if value is None:
            if not self._warned:
                self._warned = True
                warnings.warn(
                    f"ProvenanceTrackedFunction({self.source}): result of type {type(result).__name__} "
                    "is not a single number; not logged (wrap a function that returns a scalar)",
                    Yprov4mlWarning,
                    stacklevel=2,
                )
        else:
            _api.log_metric(self.source, value, self.context, self.inc, self.source)
        self.inc += 1
        return result


def _scalar(result: Any) -> float | None:
    if isinstance(result, (int, float)) and not isinstance(result, bool):
        return float(result)
    numel = getattr(result, "numel", None)
    if callable(numel) and numel() == 1:
        return float(result.detach().item() if hasattr(result, "detach") else result.item())
    size = getattr(result, "size", None)
    if isinstance(size, int) and size == 1 and hasattr(result, "item"):
        return float(result.item())
    return None
