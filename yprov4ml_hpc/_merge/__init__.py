"""Merging rank files into one PROV document and one summary per job (online and offline).

``build`` is the one entry point shared by the collective finalize and ``yprov4ml-hpc merge``;
What each rank sends for its own file is the reader's ``read_rank_meta(path, stats=True)``.
Only ``build``/``assemble`` need networkx, so they are imported on first use: a non-root rank
in finalize reads its own file without paying networkx's import (~0.2 s).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._build import BuildResult, assemble, build, document_name

__all__ = ["BuildResult", "assemble", "build", "document_name"]

_LAZY = frozenset({"BuildResult", "assemble", "build", "document_name"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import _build

        return getattr(_build, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
