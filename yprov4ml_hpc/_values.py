"""Turning user values into what the rank file stores, with clear errors for bad ones."""

from __future__ import annotations

import math
import numbers
import os
from typing import Any

import numpy as np

from ._errors import ConfigError, ConfigTypeError

__all__ = ["coerce_metric_value", "coerce_step", "coerce_timestamp_ns", "param_record_value"]

_INT64_MAX = 2**63 - 1


def coerce_metric_value(key: str, value: object) -> float:
    """Slow path of log_metric: accept any real number (NumPy, 1-element tensors), else TypeError."""
    if isinstance(value, (str, bytes, bytearray)):
        raise ConfigTypeError(
            f"metric {key!r}: value must be a real number, got {type(value).__name__} {value!r}; "
            "convert it with float() if it is numeric"
        )
    if isinstance(value, numbers.Real):
        try:
            return float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf  # type: ignore[operator]
    item = getattr(value, "item", None)  # NumPy 0-d arrays, 1-element torch tensors
    if callable(item):
        try:
            scalar = item()
        except (ValueError, RuntimeError) as exc:
            raise ConfigTypeError(
                f"metric {key!r}: value must be a single number, got {type(value).__name__} "
                f"with more than one element ({exc}); log a reduction such as .mean()"
            ) from exc
        if isinstance(scalar, numbers.Real):
            return float(scalar)
    raise ConfigTypeError(
        f"metric {key!r}: value must be a real number, got {type(value).__name__} ({value!r})"
    )


def coerce_step(key: str, step: object) -> int:
    if isinstance(step, float) and step.is_integer():
        step = int(step)
    if isinstance(step, (int, np.integer)) and not isinstance(step, bool):
        as_int = int(step)
        if -_INT64_MAX - 1 <= as_int <= _INT64_MAX:
            return as_int
        raise ConfigError(f"metric {key!r}: step {as_int} does not fit in int64")
    raise ConfigTypeError(
        f"metric {key!r}: step must be an int or None, got {type(step).__name__} ({step!r})"
    )


def coerce_timestamp_ns(key: str, timestamp: object) -> int:
    """``timestamp``: int nanoseconds since the epoch, or float seconds (time.time())."""
    if isinstance(timestamp, bool):
        raise ConfigTypeError(f"metric {key!r}: timestamp must be int ns or float s, got a bool")
    if isinstance(timestamp, (int, np.integer)):
        return int(timestamp)
    if isinstance(timestamp, (float, np.floating)) and math.isfinite(timestamp):
        return round(float(timestamp) * 1e9)
    raise ConfigTypeError(
        f"metric {key!r}: timestamp must be int ns or float seconds since the epoch, "
        f"got {type(timestamp).__name__} ({timestamp!r})"
    )


def param_record_value(value: object) -> tuple[Any, str]:
    """Return ``(json_value, python_type)``: JSON keeps int/float/bool/str/None/list/dict typed."""
    type_name = type(value).__name__
    if isinstance(value, np.generic):
        return value.item(), type_name
    if isinstance(value, np.ndarray):
        return value.tolist(), type_name
    if value is None or isinstance(value, (bool, int, float, str, list, dict)):
        return value, type_name
    if isinstance(value, tuple):
        return list(value), type_name
    if isinstance(value, os.PathLike):
        return os.fspath(value), type_name
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr), type_name
    return repr(value), type_name
