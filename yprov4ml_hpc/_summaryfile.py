"""The run summary the CLI, plots and report show: summary.json when a merge wrote it.

Before a merge (a job still running, or killed before its finalize) the same summary is
computed in memory by the merge's own code, without writing anything, so ``summary``,
``report`` and ``plot`` work on any run directory.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import _constants as C
from ._errors import DamagedRunError, StorageError
from ._reader import RunData, load_run

__all__ = [
    "SAMPLER_CONTEXTS",
    "RunSummary",
    "load_summary",
    "open_run",
    "read_summary_file",
]

# Contexts written by the background samplers; everything else is the user's own metrics.
SAMPLER_CONTEXTS = frozenset(C.SAMPLER_CONTEXTS)

ProgressHook = Callable[[int, int, str], None]


@dataclass
class RunSummary:
    """summary.json's content and where it came from ('summary.json' or 'computed')."""

    data: dict[str, Any]
    source: str

    @property
    def computed(self) -> bool:
        return self.source != "summary.json"


def read_summary_file(path: Path) -> dict[str, Any]:
    """summary.json, checked enough that the views can trust its shape."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DamagedRunError(
            f"{path}: unreadable ({exc}); rewrite it with `yprov4ml-hpc merge {path.parent}`"
        ) from exc
    if not isinstance(data, dict) or data.get("schema") != C.SUMMARY_SCHEMA:
        schema = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise DamagedRunError(
            f"{path}: not a yprov4ml_hpc summary (schema {schema!r}); "
            f"rewrite it with `yprov4ml-hpc merge {path.parent}`"
        )
    for key in ("ranks", "metrics", "stragglers"):
        if not isinstance(data.get(key, []), list):
            raise DamagedRunError(f"{path}: {key!r} is not a list; rewrite it with `yprov4ml-hpc merge`")
    return data


def open_run(run_dir: str | Path) -> RunData:
    """load_run with the errors a command-line user needs: missing, not a run, all damaged.

    Some damaged rank files among good ones are not an error (the run is read around them,
    as the merge does); they are in ``problems`` for the caller to mention.
    """
    root = Path(run_dir)
    if not root.exists():
        raise StorageError(f"{root}: no such directory")
    if not root.is_dir():
        raise StorageError(f"{root}: not a directory; pass a run directory (prov/<experiment>_<run_id>)")
    data = load_run(root)
    if not data.ranks:
        reasons = "; ".join(why for _, why in data.problems) or "no rank files"
        raise DamagedRunError(f"{root}: no readable rank file ({reasons})")
    return data


def load_summary(
    run_dir: str | Path, run: RunData | None = None, progress: ProgressHook | None = None
) -> RunSummary:
    """summary.json if present, else the same keys computed in memory from the rank files."""
    root = Path(run_dir)
    path = root / C.SUMMARY_FILENAME
    if path.is_file():
        return RunSummary(read_summary_file(path), "summary.json")
    data = run if run is not None else open_run(root)
    # The merge's own reader and summarizer, so these numbers are exactly what `merge` would
    # write; in memory only: summary.json appearing in a live run's directory is the signal
    # its finalize waits for, so a read-only command must never write it.
    from ._merge._summary import summarize

    with_stats = load_run(data.run_dir, stats=True, progress=progress)
    return RunSummary(summarize([with_stats], generated_by="merge"), "computed")
