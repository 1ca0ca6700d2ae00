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
from collections.abc import Sequence
from pathlib import Path

import h5py

from .. import _constants as C
from .._output import replacing
from .._reader import Progress, RankMeta, RunData
from .._reader._rank import read_series_arrays
from .._rundir import run_dir_name

__all__ = ["consolidate"]

_STR = h5py.string_dtype("utf-8")


def _copy_rank(meta: RankMeta, target: h5py.Group) -> None:
    """The rank as the reader checked it (no raw copy of an untrusted file's objects)."""
    for key, value in meta.attrs.raw.items():
        target.attrs[key] = value
    for name, records in (
        (C.PARAMS_DATASET, meta.params),
        (C.ARTIFACTS_DATASET, meta.artifacts),
        (C.EVENTS_DATASET, meta.events),
    ):
        lines = [json.dumps(r, ensure_ascii=False, default=str) for r in records]
        target.create_dataset(name, data=lines, dtype=_STR)
    if meta.path is None:
        return
    for s in meta.series:
        group = target.require_group(s.h5path.lstrip("/"))
        group.attrs["name"] = s.name
        group.attrs["context"] = s.context
        for key, data in zip(
            ("step", "value", "time_ns"), read_series_arrays(meta.path, s.h5path, s.count), strict=True
        ):
            group.create_dataset(key, data=data)


def consolidate(runs: Sequence[RunData], path: Path, progress: Progress | None = None) -> Path:
    """Write ``path`` (atomically) holding every readable rank's series of every run."""
    total = sum(len(run.metas) for run in runs)
    done = 0
    with replacing(path) as handle, h5py.File(handle, "w") as out:
        out.attrs["schema"] = "yprov4ml_hpc/consolidated"
        out.attrs["schema_version"] = 1
        for run in runs:
            run_group = out.create_group(run_dir_name(run.experiment, run.run_id))
            run_group.attrs["run_id"] = run.run_id
            run_group.attrs["experiment"] = run.experiment
            run_group.attrs["world_size"] = run.world_size
            run_group.attrs["problems"] = json.dumps([{"file": f, "reason": r} for f, r in run.problems])
            for rank, meta in run.metas.items():
                _copy_rank(meta, run_group.create_group(f"rank_{rank:06d}"))
                done += 1
                if progress is not None:
                    progress(done, total, "ranks consolidated")
    return path
