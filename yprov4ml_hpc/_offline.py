"""The offline side as Python functions: ``merge`` and ``export`` (what the CLI's ``merge`` and
``export`` commands run).  Importing this module is free: networkx and prov, which the work
needs, are imported when a function is called."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from . import _constants as C
from ._errors import ConfigError

if TYPE_CHECKING:
    from ._merge._build import BuildResult

__all__ = ["export", "fold_dead_ranks", "merge"]

PathLike = str | os.PathLike[str]


def merge(
    run_dirs: PathLike | Sequence[PathLike],
    out: PathLike | None = None,
    *,
    prov_detail: str | None = None,
    strict: bool = False,
    straggler_factor: float = C.DEFAULT_STRAGGLER_FACTOR,
    create_graph: bool = False,
    create_svg: bool = False,
    consolidate: bool = False,
    workers: int = 1,
) -> BuildResult:
    """Write the PROV document and summary.json of a run directory from its rank files (a run
    that crashed, was killed or never finalized), or of several runs chained in order.

    ``out`` defaults to the run directory (required for several).  ``strict`` makes a damaged
    rank file an error instead of a rank merged around.  ``workers`` > 1 reads rank files in
    that many processes.  Returns the result: ``.document``, ``.summary_path``, ``.summary``
    (the dict written), ``.graph_dot``/``.graph_svg``/``.consolidated`` when asked.
    Same code and same document as the online finalize (``yprov4ml-hpc merge`` on the CLI).
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be an int >= 1, got {workers!r}")
    if prov_detail is not None and prov_detail not in C.PROV_DETAIL_CHOICES:
        raise ConfigError(f"prov_detail must be one of {C.PROV_DETAIL_CHOICES}, got {prov_detail!r}")
    from ._merge import build  # networkx: only when a merge runs

    result = build(
        run_dirs,
        out,
        generated_by="merge",
        prov_detail=prov_detail,
        straggler_factor=straggler_factor,
        strict=strict,
        create_graph=create_graph,
        create_svg=create_svg,
        consolidate=consolidate,
        workers=workers,
    )
    if out is None:
        dirs: Sequence[PathLike] = [run_dirs] if isinstance(run_dirs, (str, os.PathLike)) else run_dirs
        result.messages.extend(fold_dead_ranks(dirs))
    return result


def fold_dead_ranks(run_dirs: Sequence[PathLike]) -> list[str]:
    """After an in-place merge: fold the journals of ranks that died into their .h5 files.

    After the build, so that the merge describes the files as ``summary`` and ``info`` saw
    them.  A journal whose writer may still be alive (a ``running`` rank on another host, or
    whose process exists here) is left alone.  Returns a line for each journal not folded.
    """
    from ._fold import fold_ended_journals
    from ._reader import scan_rank_files

    lines: list[str] = []
    for run_dir in run_dirs:
        files = scan_rank_files(Path(run_dir) / C.RANKS_DIRNAME)
        journals = [path for path in files.by_rank.values() if path.name.endswith(C.JOURNAL_SUFFIX)]
        outcomes = fold_ended_journals(journals)
        lines.extend(f"{name}: {outcome}" for name, outcome in outcomes if outcome != "folded")
    return lines


def export(run_dir: PathLike, format: str, out: PathLike | None = None) -> Path:
    """Write a run in another format; returns the file (or folder, for ``csv``) written.

    ``format``: ``provn``, ``xml``, ``rdf`` (Turtle), ``jsonld`` (these four convert the PROV
    document, so the run must be merged), ``metrics-json`` or ``csv`` (from the rank files).
    ``out`` defaults to the run directory; an existing folder gets the default file name.
    """
    from ._export import export as export_run

    return export_run(run_dir, format, out)
