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
_FAST_REALS = (float, int, np.floating, np.integer)  # no complex type is among them


def coerce_metric_value(key: str, value: object) -> float:
    """Slow path of log_metric: accept any real number (NumPy, 1-element tensors), else TypeError."""
    if isinstance(value, (str, bytes, bytearray)):
        raise ConfigTypeError(
            f"metric {key!r}: value must be a real number, got {type(value).__name__} {value!r}; "
            "convert it with float() if it is numeric"
        )
    if isinstance(value, _FAST_REALS):  # the common non-float values, without an ABC check
        try:
            return float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf
    if isinstance(value, (complex, np.complexfloating)):
        raise ConfigTypeError(
            f"metric {key!r}: value must be a real number, got {type(value).__name__} {value!r}; "
            "log its .real, .imag or abs() as separate metrics"
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
        if isinstance(scalar, complex):
            raise ConfigTypeError(f"metric {key!r}: value must be a real number, got complex {scalar!r}")
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
    """``timestamp``: int nanoseconds since the epoch, or float seconds (time.time()).

    The result must fit the int64 nanoseconds of the rank file (1970 to 2262): anything else
    is a ValueError naming the metric and the value, raised before the point is recorded.
    """
    if isinstance(timestamp, bool):
        raise ConfigTypeError(f"metric {key!r}: timestamp must be int ns or float s, got a bool")
    if isinstance(timestamp, (int, np.integer)):
        return _in_range(key, timestamp, int(timestamp))
    if isinstance(timestamp, (float, np.floating)) and math.isfinite(timestamp):
        return _in_range(key, timestamp, round(float(timestamp) * 1e9))
    raise ConfigTypeError(
        f"metric {key!r}: timestamp must be int ns or float seconds since the epoch, "
        f"got {type(timestamp).__name__} ({timestamp!r})"
    )


def _in_range(key: str, given: object, ns: int) -> int:
    if 0 <= ns <= _INT64_MAX:
        return ns
    raise ConfigError(
        f"metric {key!r}: timestamp {given!r} is outside 1970..2262 once read as "
        "nanoseconds (int) or seconds (float) since the epoch; pass time.time_ns() or time.time()"
    )


def param_record_value(value: object) -> tuple[Any, str]:
    """Return ``(json_value, python_type)``: JSON keeps int/float/bool/str/None/list/dict typed."""
    return _plain(value, 0), type(value).__name__


_MAX_DEPTH = 64  # a self-referencing config dict must end in an error, not a RecursionError


def _plain(value: object, depth: int) -> Any:
    """A JSON-ready copy: NumPy scalars/arrays, paths, tuples and sets converted at any depth."""
    if depth > _MAX_DEPTH:
        raise ConfigError(f"param value nested more than {_MAX_DEPTH} levels (a cycle?)")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return _plain(value.item(), depth + 1)
    if isinstance(value, np.ndarray):
        return _plain(value.tolist(), depth + 1)
    if isinstance(value, complex):
        return repr(value)  # JSON has no complex; the text keeps both parts
    if isinstance(value, dict):
        return {str(_plain(k, depth + 1)): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, depth + 1) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (set, frozenset)):
        return [_plain(v, depth + 1) for v in sorted(value, key=repr)]
    return repr(value)
