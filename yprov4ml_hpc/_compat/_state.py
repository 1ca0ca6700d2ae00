"""Per-run state of the yProv4ML extras: ``register_final_metric``'s folded values (recorded
as params when the run ends), FLOP totals, model version counters and the numbering of unnamed inputs/outputs.

A module of its own that imports nothing of ours, so that ``Run.end`` (which records the
final values), the facade's ``log_metric`` (which folds them) and ``start_run`` (which
resets everything) can all use it without an import cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._run import Run

__all__ = [
    "final_metrics",
    "flops_total",
    "fold_final",
    "io_counts",
    "model_versions",
    "record_final_metrics",
    "reset",
]

# metric name -> [current value, fold function]; empty: the hot path pays one truth test
final_metrics: dict[str, list[Any]] = {}
# log_flops_per_batch/_per_epoch: label -> FLOPs so far in this run
flops_total: dict[str, float] = {}
# save_model_version(incremental=True): model name -> versions saved in this run
model_versions: dict[str, int] = {}
# log_input(inp)/log_output(out) without a name: "input"/"output" -> values numbered so far
io_counts: dict[str, int] = {}


def fold_final(key: str, value: object) -> None:
    entry = final_metrics.get(key)
    if entry is not None:
        number = value.item() if hasattr(value, "item") else value
        entry[0] = entry[1](entry[0], number)


def record_final_metrics(run: Run, name_of: Callable[[Any], str]) -> None:
    """Write each registered final value as a param (before the rank file closes)."""
    for name, (value, fold) in list(final_metrics.items()):
        run.log_param(f"{name}_final", value, "final")
        run.log_param(f"{name}_final_fold", name_of(fold), "final")
    final_metrics.clear()


def reset() -> None:
    """A new run starts with none of the previous run's state."""
    final_metrics.clear()
    flops_total.clear()
    model_versions.clear()
    io_counts.clear()
