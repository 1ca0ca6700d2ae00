"""Upstream positional layouts, unknown keywords and type checks of the yProv4ML-facing API.

yProv4ML changed some signatures between versions without renaming the functions: 2.0.x's
``start_run`` has ``disable_codecarbon`` where 3.2.x has ``metrics_file_type``; 2.0.x's
``log_artifact``/``save_model_version`` have ``step`` where 3.2.x has ``source``; prov4ml
1.x passed the model or dataset first.  Our functions carry the 3.2.x signature; a call
whose positional arguments have the types of an older layout (a bool where 3.2.x has a
string, an object where it has a name) is re-bound by that layout, so no positional argument
ever lands in a parameter of another meaning.
"""

from __future__ import annotations

import functools
import numbers
import os
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from .._errors import ConfigTypeError, Yprov4mlWarning

__all__ = ["NOT_GIVEN", "Layout", "check_type", "upstream_layouts", "user_stacklevel", "warn_unknown"]

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

F = TypeVar("F", bound=Callable[..., Any])

# A keyword's default when None is a value the caller may pass (log_input(value=None) logs None).
NOT_GIVEN: Any = object()


@dataclass(frozen=True)
class Layout:
    """An older positional order of one function, recognised by the types of its arguments."""

    version: str
    names: tuple[str, ...]
    matches: Callable[[Sequence[object]], bool]


def upstream_layouts(*layouts: Layout) -> Callable[[F], F]:
    """Re-bind positional arguments by the first layout whose type test matches them."""

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def call(*args: Any, **kwargs: Any) -> Any:
            for layout in layouts:
                if args and layout.matches(args):
                    if len(args) > len(layout.names):
                        raise ConfigTypeError(
                            f"{func.__name__}() takes at most {len(layout.names)} positional "
                            f"arguments in the {layout.version} order, got {len(args)}"
                        )
                    bound = dict(zip(layout.names, args, strict=False))
                    twice = sorted(set(bound) & set(kwargs))
                    if twice:
                        raise ConfigTypeError(f"{func.__name__}() got multiple values for {twice}")
                    return func(**bound, **kwargs)
            return func(*args, **kwargs)

        return call  # type: ignore[return-value]

    return decorate


def is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_name(value: object) -> bool:
    return isinstance(value, str)


def warn_unknown(
    func: str, kwargs: Mapping[str, object], known_ignored: frozenset[str] = frozenset()
) -> None:
    """An unknown keyword is a warning, never a TypeError: a script for a newer yProv4ML still runs."""
    unknown = sorted(set(kwargs) - known_ignored)
    if unknown:
        warnings.warn(
            f"{func}() ignores unknown arguments {unknown}; check their spelling "
            "(see the README table 'yProv4ML API -> yprov4ml_hpc')",
            Yprov4mlWarning,
            stacklevel=user_stacklevel(),
        )


def user_stacklevel() -> int:
    """The ``stacklevel`` that points a warning at the user's line, past our own frames."""
    frame = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return level


def check_type(func: str, name: str, value: object, types: tuple[type, ...], upstream: str) -> None:
    """TypeError naming the parameter, the value and the yProv4ML version that takes it."""
    if value is None or (isinstance(value, types) and not (bool not in types and isinstance(value, bool))):
        return
    expected = " or ".join(t.__name__ for t in types)
    raise ConfigTypeError(
        f"{func}({name}=...) must be {expected} or None as in {upstream}, got "
        f"{type(value).__name__} {value!r}"
    )
