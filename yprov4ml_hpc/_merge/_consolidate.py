"""One HDF5 file with every rank's series: copies, so it stands alone (archive it, mail it).

Layout, readable with plain h5py (no yprov4ml_hpc needed)::

    /<experiment>_<run_id>/                      attrs: run_id, experiment, world_size
        rank_000003/                             attrs: the rank file's root attributes
            params, artifacts, events            JSON lines, as in the rank file
            metrics/<context>/<name>/step|value|time_ns   attrs: name, context (original)

Series are cut to their common length (a rank killed mid-append may have one dataset a
batch longer than the others).  Damaged rank files are skipped and listed in the run
group's ``problems`` attribute.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import h5py

from .. import _constants as C
from .._reader import open_rank_file
from .._rundir import run_dir_name
from ._inputs import Progress, RunInput

__all__ = ["consolidate"]

_RECORDS = (C.PARAMS_DATASET, C.ARTIFACTS_DATASET, C.EVENTS_DATASET)


def _copy_rank(source: h5py.File, target: h5py.Group, series: list[dict[str, object]]) -> None:
    for key, value in source.attrs.items():
        target.attrs[key] = value
    for name in _RECORDS:
        if name in source:
            source.copy(source[name], target, name=name)
    for s in series:
        h5path = str(s["h5path"])
        count = int(str(s["count"]))
        group = target.require_group(h5path.lstrip("/"))
        src = source[h5path]
        for key, value in src.attrs.items():
            group.attrs[key] = value
        for key in ("step", "value", "time_ns"):
            group.create_dataset(key, data=src[key][:count])


def consolidate(runs: Sequence[RunInput], path: Path, progress: Progress | None = None) -> Path:
    """Write ``path`` (atomically) holding every readable rank's series of every run."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    total = sum(len(run.metas) for run in runs)
    done = 0
    with h5py.File(tmp, "w") as out:
        out.attrs["schema"] = "yprov4ml_hpc/consolidated"
        out.attrs["schema_version"] = 1
        for run in runs:
            run_group = out.create_group(run_dir_name(run.experiment, run.run_id))
            run_group.attrs["run_id"] = run.run_id
            run_group.attrs["experiment"] = run.experiment
            run_group.attrs["world_size"] = run.world_size
            run_group.attrs["problems"] = json.dumps([{"file": f, "reason": r} for f, r in run.problems])
            for rank, meta in run.metas.items():
                with open_rank_file(meta["path"]) as source:
                    _copy_rank(source, run_group.create_group(f"rank_{rank:06d}"), meta["series"])
                done += 1
                if progress is not None:
                    progress(done, total, "ranks consolidated")
    os.replace(tmp, path)
    return path
