"""Why a run has no emissions or no system series, in words the user can act on.

"Off" (the user turned it off) and "not installed" (the extra is missing) need different
fixes, so every message that explains a missing figure comes from here, from what each rank
file's ``sampler_info`` says about its samplers.  Files written before these facts were
recorded say neither: the message then says so instead of guessing.
"""

from __future__ import annotations

from typing import Any

from .._reader import RunData
from .._samplers._carbon import (
    CARBON_DISABLED,
    CARBON_EXTRA_HINT,
    CARBON_FAILED,
    CARBON_NOT_INSTALLED,
    CARBON_ON,
    CARBON_OTHER_RANK,
)

__all__ = ["carbon_note", "sampler_info", "system_note"]


def sampler_info(run: RunData) -> list[dict[str, Any]]:
    """Each readable rank's ``sampler_info`` (an empty dict where it is absent or unreadable)."""
    return [dict(meta.attrs.sampler_info) for _, meta in sorted(run.metas.items())]


def carbon_note(run: RunData) -> str:
    """Why the run has no codecarbon figures: off, not installed, failed, or silent."""
    states = {str(info.get("carbon")) for info in sampler_info(run) if info.get("carbon")}
    states.discard(CARBON_OTHER_RANK)  # that rank's node leader speaks for the node
    reasons = []
    failures = sorted(s for s in states if s.startswith(CARBON_FAILED))
    if failures:
        reasons.append(f"codecarbon on, but {failures[0].split(': ', 1)[-1]}")
    if CARBON_ON in states:
        reasons.append("codecarbon on, but it reported nothing (the run ended before its first reading)")
    if CARBON_NOT_INSTALLED in states:
        reasons.append(f"codecarbon not installed: {CARBON_EXTRA_HINT}")
    if CARBON_DISABLED in states:
        reasons.append("codecarbon off (disable_codecarbon=True or YPROV4ML_HPC_CARBON=0)")
    if not reasons:
        return "codecarbon off or not installed (this run's files do not say which)"
    return "; ".join(reasons)


def _interval(info: dict[str, Any]) -> float | None:
    value = info.get("interval_s")
    return float(value) if isinstance(value, (int, float)) else None


def system_note(run: RunData) -> str:
    """Why the run has no CPU/GPU series: sampling off, or on but never sampled."""
    intervals = {_interval(info) for info in sampler_info(run)} - {None}
    if not intervals:
        return "no system series recorded (this run's files do not say whether sampling was on)"
    if intervals == {0.0}:
        return (
            "system metrics off (start_run(system_metrics_interval_s=0)) "
            "and log_system_metrics() never called"
        )
    every = ", ".join(f"{i:g} s" for i in sorted(i for i in intervals if i))
    return f"system metrics on (every {every}), but no CPU or GPU sample was recorded"
