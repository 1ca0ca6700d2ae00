"""``build``: the ONE function that finalize and ``yprov4ml-hpc merge`` both call.

Rank metas (given by finalize, read from the rank files otherwise) -> networkx graph ->
``prov_<experiment>_<run_id>.json`` and ``summary.json`` (+ graph.dot/.svg, consolidated.h5).
The document holds no wall-clock time of the build and every collection is walked in sorted
order, so a finalize and a later merge of the same files write the same document; the
summary differs only in ``generated_by``, ``generated_at`` and ``collector.finalize_time_s``.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx

from .. import _constants as C
from .._errors import ConfigError, DamagedRunError, MergeError
from .._output import output_folder, write_replacing
from .._reader import Progress, RankMeta, RunData, load_run
from .._rundir import check_label
from ._consolidate import consolidate as write_consolidated
from ._dot import dot_graph, write_dot, write_svg
from ._dot_input import graph_input
from ._graph import build_graph
from ._provjson import write_prov_json
from ._stats import SeriesAggregate
from ._summary import metric_aggregates, summarize

__all__ = ["BuildResult", "assemble", "build", "document_name"]

RunDirs = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]


@dataclass
class BuildResult:
    """What a build wrote, and the summary it computed."""

    out_dir: Path
    document: Path
    summary_path: Path
    summary: dict[str, Any]
    document_bytes: int
    runs: list[RunData] = field(repr=False)
    graph_dot: Path | None = None
    graph_svg: Path | None = None
    consolidated: Path | None = None
    messages: list[str] = field(default_factory=list)  # one-liners for the user (svg skipped, ...)


def document_name(runs: Sequence[RunData]) -> str:
    run_id = runs[0].run_id if len(runs) == 1 else f"{runs[0].run_id}..{runs[-1].run_id}"
    return C.PROV_DOCUMENT_TEMPLATE.format(experiment=runs[0].experiment, run_id=run_id)


def _check_labels(run: RunData) -> None:
    """experiment and run_id (read from the lowest rank's attributes) name the document: a
    value that is no safe label (``/../..``) is a damaged run, never part of a path."""
    rank = min(run.metas)
    attrs = run.metas[rank].attrs
    for key, value in (("experiment", attrs.experiment), ("run_id", attrs.run_id)):
        if value is None or (key == "experiment" and value == ""):
            continue  # absent: run_id falls back to the folder's name, experiment to ''
        try:
            check_label(key, value)
        except ConfigError as exc:
            source = run.run_dir / C.RANKS_DIRNAME / C.RANK_FILE_TEMPLATE.format(rank=rank)
            raise DamagedRunError(f"{source}: {exc}") from None


def _check_complete(run: RunData) -> None:
    """``strict``: a rank of the job without a rank file is as much an error as a damaged one
    (damaged files already raised while reading).  Only offline merges ask for this: finalize
    merges around ranks that never arrived, by design."""
    missing = [rank for rank in range(run.world_size) if rank not in run.metas and rank not in run.damaged]
    if missing:
        shown = ", ".join(str(rank) for rank in missing[:20])
        more = f", ... ({len(missing) - 20} more)" if len(missing) > 20 else ""
        raise DamagedRunError(
            f"{run.run_dir}: {len(missing)} of {run.world_size} ranks have no rank file "
            f"(ranks {shown}{more}, e.g. {C.RANK_FILE_TEMPLATE.format(rank=missing[0])}); "
            "merge without --strict to merge around them"
        )


def _per_rank(run: RunData, prov_detail: str | None) -> bool:
    detail = prov_detail or run.prov_detail
    if detail not in C.PROV_DETAIL_CHOICES:
        raise ConfigError(f"prov_detail must be one of {C.PROV_DETAIL_CHOICES}, got {detail!r}")
    if detail == "auto":
        return run.world_size <= C.PROV_DETAIL_AUTO_MAX_RANKS
    return detail == "rank"


def _as_dirs(run_dirs: RunDirs) -> list[Path]:
    if isinstance(run_dirs, (str, os.PathLike)):
        return [Path(run_dirs)]
    dirs = [Path(d) for d in run_dirs]
    if not dirs:
        raise ConfigError("no run directory given; pass at least one")
    return dirs


def _read_run(
    run_dir: Path,
    metas: Mapping[int, RankMeta | None] | None,
    *,
    strict: bool,
    progress: Progress | None,
    workers: int,
) -> RunData:
    try:
        run = load_run(run_dir, strict, metas=metas, stats=True, progress=progress, workers=workers)
    except DamagedRunError as exc:
        if not strict:
            raise
        raise DamagedRunError(f"{run_dir}: {exc} (merge without --strict to merge around it)") from exc
    if not run.metas:
        reasons = "; ".join(reason for _, reason in run.problems) or "no rank files"
        raise MergeError(f"{run_dir}: no readable rank file to merge ({reasons})")
    return run


def assemble(
    run_dirs: RunDirs,
    *,
    metas: Mapping[int, RankMeta | None] | None = None,
    prov_detail: str | None = None,
    strict: bool = False,
    progress: Progress | None = None,
    workers: int = 1,
) -> tuple[list[RunData], nx.MultiDiGraph]:
    """Read (or take) the rank metas of every run and build the graph; writes nothing."""
    runs = _collect(_as_dirs(run_dirs), metas=metas, strict=strict, progress=progress, workers=workers)
    graph, _ = _graph_and_aggregates(runs, prov_detail)
    return runs, graph


def _collect(
    dirs: list[Path],
    *,
    metas: Mapping[int, RankMeta | None] | None,
    strict: bool,
    progress: Progress | None,
    workers: int,
    read_metas: Sequence[Mapping[int, RankMeta | None]] | None = None,
) -> list[RunData]:
    if metas is not None and len(dirs) != 1:
        raise ConfigError("metas can be given for one run directory only")
    if read_metas is not None and len(read_metas) != len(dirs):
        raise ConfigError(
            f"read_metas needs one mapping per run directory ({len(dirs)}), got {len(read_metas)}"
        )
    given = list(read_metas) if read_metas is not None else [metas, *([None] * (len(dirs) - 1))]
    runs = [
        _read_run(d, given[i], strict=strict, progress=progress, workers=workers) for i, d in enumerate(dirs)
    ]
    seen: dict[tuple[str, str], Path] = {}
    for run in runs:
        _check_labels(run)
        if strict:
            _check_complete(run)
        key = (run.experiment, run.run_id)
        if key in seen:
            raise ConfigError(
                f"{run.run_dir} and {seen[key]} are the same run ({run.experiment}_{run.run_id}); "
                "pass each run directory once"
            )
        seen[key] = run.run_dir
    return runs


def _graph_and_aggregates(
    runs: list[RunData], prov_detail: str | None
) -> tuple[nx.MultiDiGraph, dict[tuple[str, str], SeriesAggregate] | None]:
    """The graph, and for a single run the series aggregates it shares with the summary."""
    shared = metric_aggregates(runs) if len(runs) == 1 else None
    return build_graph(runs, [_per_rank(run, prov_detail) for run in runs], shared), shared


def summary_text(summary: dict[str, Any]) -> str:
    """One key per line and one list item (rank, metric, ...) per line: readable, and fast at
    10^5 ranks (``json.dumps(indent=...)`` runs the pure-Python encoder: ~1.5 s per 16k ranks).
    ``allow_nan=False``: the summary turns non-finite numbers into null; this proves it did."""
    encode = json.JSONEncoder(separators=(", ", ": "), ensure_ascii=False, allow_nan=False).encode
    lines = []
    for key, value in summary.items():
        if isinstance(value, list) and value:
            items = ",\n".join(f"  {encode(item)}" for item in value)
            lines.append(f" {encode(key)}: [\n{items}\n ]")
        else:
            lines.append(f" {encode(key)}: {encode(value)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def _write_json(path: Path, value: dict[str, Any]) -> None:
    write_replacing(path, summary_text(value))


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """The build allocates millions of small objects and frees few before it ends: the cyclic
    collector would walk them again and again (a third of the build's time at 10^5 ranks)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@_gc_paused()
def build(
    run_dirs: RunDirs,
    out_dir: str | os.PathLike[str] | None = None,
    *,
    metas: Mapping[int, RankMeta | None] | None = None,
    generated_by: str = "merge",
    prov_detail: str | None = None,
    straggler_factor: float = C.DEFAULT_STRAGGLER_FACTOR,
    strict: bool = False,
    create_graph: bool = False,
    create_svg: bool = False,
    consolidate: bool = False,
    started: float | None = None,
    progress: Progress | None = None,
    workers: int = 1,
    read_metas: Sequence[Mapping[int, RankMeta | None]] | None = None,
) -> BuildResult:
    """Merge one run directory (or several, chained in order) into one document and summary.

    ``out_dir`` defaults to the run directory (required for several).  ``metas`` (rank -> merge
    meta) are what finalize gathered; ranks without one are read from disk.  ``started`` is the
    ``time.perf_counter()`` at which finalize began, so ``finalize_time_s`` includes the wait.
    ``workers`` > 1 reads rank files in that many processes (the CLI's offline merges);
    ``read_metas`` (one mapping per run directory) are metas other MPI processes already read
    (``mpiexec ... merge``): the same reader, so the same document.
    """
    started = time.perf_counter() if started is None else started
    if generated_by not in ("finalize", "merge"):
        raise ConfigError(f"generated_by must be 'finalize' or 'merge', got {generated_by!r}")
    if not straggler_factor > 0:
        raise ConfigError(f"straggler_factor must be > 0, got {straggler_factor!r}")
    dirs = _as_dirs(run_dirs)
    if out_dir is None and len(dirs) > 1:
        raise ConfigError("merging several run directories needs an output directory (-o OUT_DIR)")
    target = Path(out_dir) if out_dir is not None else dirs[0]
    runs = _collect(
        dirs, metas=metas, strict=strict, progress=progress, workers=workers, read_metas=read_metas
    )
    graph, aggregates = _graph_and_aggregates(runs, prov_detail)
    output_folder(target)  # after reading: a mistyped run directory must not be created
    document = target / document_name(runs)
    document_bytes = write_prov_json(graph, document)
    result = BuildResult(target, document, target / C.SUMMARY_FILENAME, {}, document_bytes, runs)
    if create_graph or create_svg:
        picture = dot_graph([graph_input(run) for run in runs])
        result.graph_dot = write_dot(picture, target / C.GRAPH_DOT_FILENAME)
        if create_svg:
            result.graph_svg, message = write_svg(
                result.graph_dot, target / C.GRAPH_SVG_FILENAME, picture.nodes
            )
            if message:
                result.messages.append(message)
    if consolidate:
        result.consolidated = write_consolidated(runs, target / C.CONSOLIDATED_FILENAME, progress)
    # The summary goes last: its presence tells waiting ranks that everything is written.
    result.summary = summarize(
        runs,
        generated_by=generated_by,
        straggler_factor=straggler_factor,
        finalize_time_s=time.perf_counter() - started,
        aggregates=aggregates,
    )
    _write_json(result.summary_path, result.summary)
    return result
