"""Reversible escaping of user names (metrics, contexts, params) into HDF5 link names.

HDF5 uses ``/`` as the path separator and treats ``.`` specially, and cannot store NUL.
We percent-encode just ``%``, ``/`` and a leading ``.``, so most names stay readable in
``h5ls`` and every name (Unicode included) reads back exactly.
"""

from __future__ import annotations

from urllib.parse import unquote

from ._errors import ConfigError, ConfigTypeError

__all__ = ["check_name", "check_utf8", "escape_name", "unescape_name"]


def check_name(kind: str, name: object) -> str:
    """Validate a user-supplied name; return it unchanged or raise a clear error."""
    if not isinstance(name, str):
        raise ConfigTypeError(
            f"{kind} must be a str, got {type(name).__name__} ({name!r}); pass a string such as 'loss'"
        )
    if not name:
        raise ConfigError(f"{kind} must not be empty; pass a string such as 'loss'")
    if "\x00" in name:
        raise ConfigError(f"{kind} {name!r} contains a NUL character, which HDF5 cannot store; remove it")
    check_utf8(kind, name)
    return name


def check_utf8(kind: str, text: str) -> None:
    """Refuse a str that UTF-8 cannot encode (a lone surrogate such as '\\ud800')."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ConfigError(
            f"{kind} {text!r} contains {text[exc.start : exc.end]!r}, a lone surrogate that UTF-8 "
            "(and so the rank file) cannot store; pass valid Unicode text"
        ) from None


def escape_name(name: str) -> str:
    """Return an HDF5-safe link name from which :func:`unescape_name` recovers ``name``."""
    escaped = name.replace("%", "%25").replace("/", "%2F")
    if escaped.startswith("."):
        escaped = "%2E" + escaped[1:]
    return escaped


def unescape_name(escaped: str) -> str:
    """Invert :func:`escape_name`."""
    return unquote(escaped, errors="strict")
