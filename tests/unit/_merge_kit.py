"""Real multi-rank run directories made in one process (no MPI): one Run per rank.

Each rank logs known values, so tests can compare the merge's numbers with numbers computed
here from the very same values.  A rank can be left as a silent death (status ``running``,
as a SIGKILLed process leaves it), ``failed`` or ``killed``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import pytest

import yprov4ml_hpc
from yprov4ml_hpc import Run
from yprov4ml_hpc import _constants as C
from yprov4ml_hpc._merge import build

ValueFn = Callable[[int, int], float]


def default_loss(rank: int, step: int) -> float:
    return 10.0 / (1 + step) + rank * 0.5


@dataclass
class MadeRun:
    run_dir: Path
    world_size: int
    logged: dict[tuple[str, str, int], list[float]] = field(default_factory=dict)  # (name, ctx, rank)


def make_run(
    save_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    world_size: int = 4,
    run_id: str = "r1",
    experiment: str = "exp",
    steps: int = 30,
    loss: ValueFn = default_loss,
    statuses: dict[int, str] | None = None,
    skip_ranks: tuple[int, ...] = (),
    energy: dict[int, dict[str, list[float]]] | None = None,
    step_sleep: dict[int, int] | None = None,
    prov_detail: str = "auto",
    extra: Callable[[Run], None] | None = None,
) -> MadeRun:
    """Write ``world_size`` rank files; ``statuses[rank]`` may be failed/killed/running."""
    monkeypatch.setenv("WORLD_SIZE", str(world_size))
    statuses = statuses or {}
    made: MadeRun | None = None
    for rank in range(world_size):
        if rank in skip_ranks:
            continue
        run = Run(
            experiment,
            provenance_save_dir=save_dir,
            run_id=run_id,
            rank=rank,
            flush_interval_s=0,
            buffer_size=16,
            prov_detail=prov_detail,
            install_signal_handlers=False,
            carbon=False,  # codecarbon costs seconds per run; energy series are logged by hand here
            system_metrics_interval_s=0,
        )
        made = made or MadeRun(run.run_dir, world_size)
        run.log_param("lr", 0.01)
        run.log_param("seed", rank)
        values = [loss(rank, step) for step in range(steps)]
        # A fake clock: rank r takes (1 + step_sleep[r]) ms per step, so stragglers are exact.
        per_step_ns = 1_000_000 * (1 + (step_sleep or {}).get(rank, 0))
        for step, value in enumerate(values):
            run.log_metric(
                "loss",
                value,
                context="training",
                step=step,
                timestamp=1_700_000_000_000_000_000 + step * per_step_ns,
            )
        made.logged[("loss", "training", rank)] = values
        acc = [0.5 + 0.01 * rank, 0.6 + 0.01 * rank]
        for step, value in enumerate(acc):
            run.log_metric("acc", value, context="validation", step=step)
        made.logged[("acc", "validation", rank)] = acc
        for name, series in (energy or {}).get(rank, {}).items():
            for value in series:
                run.log_metric(name, value, context="energy")
            made.logged[(name, "energy", rank)] = series
        if extra is not None:
            extra(run)
        status = statuses.get(rank, "finished")
        run.close("finished" if status == "running" else status, "test")
        if status == "running":
            mark_running(run.run_dir / "ranks" / f"rank_{rank:06d}.h5")
    assert made is not None
    return made


@contextlib.contextmanager
def edit_rank_file(path: Path) -> Iterator[h5py.File]:
    """Open a closed rank file to change its layout by hand.  Its metadata record (``/meta``, a
    copy of the root attributes and series) is removed, so the file reads like one written
    before the record existed: from its layout, with the edit (a left record would win)."""
    with h5py.File(path, "r+") as handle:
        yield handle
        if C.META_DATASET in handle:
            del handle[C.META_DATASET]


def mark_running(path: Path) -> None:
    """Make a closed rank file look like one whose process was SIGKILLed (never marked closed)."""
    with edit_rank_file(path) as handle:
        handle.attrs["status"] = "running"
        handle.attrs["end_ns"] = 0
        del handle.attrs["wall_time_s"]


def summary_of(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "summary.json").read_text())


def merge(run_dir: Path | list[Path], out: Path | None = None, **kwargs: Any) -> Any:
    """The public ``yprov4ml_hpc.merge``; with ``metas=`` (synthetic ranks, no files) the
    internal build that finalize calls, which alone takes them."""
    if "metas" in kwargs:
        return build(run_dir, out, **kwargs)
    return yprov4ml_hpc.merge(run_dir, out, **kwargs)
