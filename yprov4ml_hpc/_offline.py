"""The offline side as Python functions: ``merge`` and ``export`` (what the CLI's ``merge`` and
``export`` commands run).  Importing this module is free: networkx and prov, which the work
needs, are imported when a function is called."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from . import _constants as C
from ._errors import ConfigError

if TYPE_CHECKING:
    from ._merge._build import BuildResult
    from ._reader import RankMeta

__all__ = ["export", "fold_dead_ranks", "merge", "read_metas_shared"]

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
    comm: Any = None,
) -> BuildResult:
    """Write the PROV document and summary.json of a run directory from its rank files (a run
    that crashed, was killed or never finalized), or of several runs chained in order.

    ``out`` defaults to the run directory (required for several).  ``strict`` makes a damaged
    rank file an error instead of a rank merged around.  ``workers`` > 1 reads rank files in
    that many processes.  Returns the result: ``.document``, ``.summary_path``, ``.summary``
    (the dict written), ``.graph_dot``/``.graph_svg``/``.consolidated`` when asked.
    Same code and same document as the online finalize (``yprov4ml-hpc merge`` on the CLI).

    ``comm``: an mpi4py communicator whose processes all call ``merge`` with the same arguments
    (a script under ``mpiexec -n N`` or ``srun``): they share the reading of the rank files,
    the first one builds and writes, and every process returns the result (the others without
    ``.runs``, the rank metadata read).  An error there is raised on every process.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be an int >= 1, got {workers!r}")
    if prov_detail is not None and prov_detail not in C.PROV_DETAIL_CHOICES:
        raise ConfigError(f"prov_detail must be one of {C.PROV_DETAIL_CHOICES}, got {prov_detail!r}")
    options: dict[str, Any] = {
        "prov_detail": prov_detail,
        "straggler_factor": straggler_factor,
        "strict": strict,
        "create_graph": create_graph,
        "create_svg": create_svg,
        "consolidate": consolidate,
        "workers": workers,
    }
    if comm is None or comm.Get_size() == 1:
        return _merge_here(run_dirs, out, None, options)
    outcome: BuildResult | BaseException | None = None
    try:  # on rank 0 only: the other processes' errors come to it with their shares
        read_metas = read_metas_shared(_as_list(run_dirs), comm)
        if read_metas is not None:
            outcome = _merge_here(run_dirs, out, read_metas, options)
    except Exception as exc:  # noqa: BLE001 - the others must not wait forever: they raise it too
        outcome = exc
    shared = comm.bcast(None if outcome is None else _shareable(outcome), root=0)
    if isinstance(outcome, BaseException):
        raise outcome
    if isinstance(shared, BaseException):
        raise shared
    return outcome if outcome is not None else cast("BuildResult", shared)


def _as_list(run_dirs: PathLike | Sequence[PathLike]) -> Sequence[PathLike]:
    return [run_dirs] if isinstance(run_dirs, (str, os.PathLike)) else run_dirs


def _shareable(outcome: BuildResult | BaseException) -> object:
    """What rank 0 sends the others: the result without the rank metadata (at 10^5 ranks,
    hundreds of MB), or the error (its text in a RuntimeError if it cannot be pickled)."""
    if isinstance(outcome, BaseException):
        if _picklable(outcome):
            return outcome
        return RuntimeError(f"merge failed on rank 0: {type(outcome).__name__}: {outcome}")
    return dataclasses.replace(outcome, runs=[])


def read_metas_shared(run_dirs: Sequence[PathLike], comm: Any) -> list[dict[int, RankMeta | None]] | None:
    """Each process of ``comm`` reads every size-th rank file of each run; rank 0 gets them all
    (as the build reads them, so the build is the serial one); None on the other processes.

    Collective.  A process that fails to read sends its error along: rank 0 raises the first
    one, the others return None as usual (so no process is left waiting in the gather)."""
    from ._reader import read_metas_share

    index, count = comm.Get_rank(), comm.Get_size()
    try:
        mine: tuple[list[Any] | None, BaseException | None] = (
            [read_metas_share(run_dir, index, count) for run_dir in run_dirs], None
        )
    except Exception as exc:  # noqa: BLE001 - sent to rank 0, which raises it
        sent = exc if _picklable(exc) else RuntimeError(f"process {index}: {type(exc).__name__}: {exc}")
        mine = (None, sent)
    gathered = comm.gather(mine, root=0)
    if index != 0:
        return None
    for _, error in gathered:
        if error is not None:
            raise error
    return [
        {rank: meta for shares, _ in gathered for rank, meta in shares[i].items()}
        for i in range(len(run_dirs))
    ]


def _picklable(value: object) -> bool:
    import pickle

    try:
        pickle.dumps(value)
    except Exception:  # noqa: BLE001 - whatever pickling raises, the answer is no
        return False
    return True


def _merge_here(
    run_dirs: PathLike | Sequence[PathLike],
    out: PathLike | None,
    read_metas: Sequence[Mapping[int, RankMeta | None]] | None,
    options: dict[str, Any],
) -> BuildResult:
    from ._merge import build  # networkx: only when a merge runs

    result = build(run_dirs, out, generated_by="merge", read_metas=read_metas, **options)
    if out is None:
        result.messages.extend(fold_dead_ranks(_as_list(run_dirs)))
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
