"""Node energy and emissions from codecarbon's ``OfflineEmissionsTracker`` (extra ``carbon``).

One tracker per node, on the node leader, because codecarbon measures the whole machine
(one per rank would multiply the node's figure). ``start()`` takes 1.2-2 s, so the sampler
thread calls it, never the training thread. The tracker is silenced and writes no file: no
``emissions.csv`` in the working directory, no lock file, no API calls.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import threading
from collections.abc import Sequence
from typing import Any

from .. import _constants as C

CARBON_EXTRA_HINT = 'pip install "yprov4ml-hpc[carbon]"'
NOT_INSTALLED = f"codecarbon is not installed; for carbon figures: {CARBON_EXTRA_HINT}"
METHOD_CODECARBON = "codecarbon_estimate"
#: ``sampler_info["carbon"]``: why a rank has (or has no) codecarbon figures.  "disabled":
#: start_run(disable_codecarbon=True) or YPROV4ML_HPC_CARBON=0; "other_rank": enabled, but
#: another rank of the node runs the node's one tracker; "failed: <why>": its start failed.
CARBON_ON = "on"
CARBON_DISABLED = "disabled"
CARBON_NOT_INSTALLED = "not_installed"
CARBON_OTHER_RANK = "other_rank"
CARBON_FAILED = "failed"  # followed by ": <why>"
ENERGY_SERIES = "codecarbon/energy_j"
EMISSIONS_SERIES = "codecarbon/emissions_kg"

#: Default country of the offline carbon-intensity lookup. codecarbon's offline mode has no
#: world-average option, so any default is wrong somewhere. "USA" is codecarbon's own
#: reference case, hosts the largest share of ML compute, and its intensity in codecarbon's
#: table (~370 gCO2e/kWh) lies between low-carbon grids (France, Switzerland, Nordics: 30-80)
#: and coal-heavy ones (China, India: 550-700), so an unconfigured estimate is neither far too
#: low nor far too high. Set ``country_iso_code`` (and ``region`` for US states / Canadian
#: provinces) to the site's location for a figure worth reporting; the choice is recorded in
#: ``SamplerSet.info``. Energy figures do not depend on it, only emissions do.
DEFAULT_COUNTRY_ISO_CODE = "USA"

_KWH_TO_J = 3.6e6

# Arguments that keep codecarbon from writing files, newest codecarbon first. 3.x deprecates
# save_to_file for output_methods; allow_multiple_runs (later 2.x) avoids its /tmp lock file
# (we already run one tracker per node); 2.3 has neither lock nor the argument.
_NO_FILE_KWARGS: tuple[dict[str, Any], ...] = (
    {"output_methods": [], "allow_multiple_runs": True},
    {"save_to_file": False, "allow_multiple_runs": True},
    {"save_to_file": False},
)


def codecarbon_installed() -> bool:
    """Whether codecarbon can be imported, without importing it (it pulls in pandas)."""
    try:
        return importlib.util.find_spec("codecarbon") is not None
    except (ImportError, ValueError):
        return False


class CarbonSampler:
    """Owns one tracker; thread-safe; ``read()`` is ~0.1-1 ms once the tracker is warm."""

    def __init__(
        self,
        country_iso_code: str,
        region: str | None,
        measure_power_secs: float,
        gpu_ids: Sequence[int] | None = None,
    ) -> None:
        self._kwargs: dict[str, Any] = {
            "country_iso_code": country_iso_code,
            "measure_power_secs": measure_power_secs,
            "log_level": "error",
            "tracking_mode": "machine",
            "project_name": "yprov4ml_hpc",
        }
        if region is not None:
            self._kwargs["region"] = region
        if gpu_ids:  # the node's GPUs, not the leader's CUDA_VISIBLE_DEVICES subset
            self._kwargs["gpu_ids"] = list(gpu_ids)
        # Reentrant: a SIGTERM handler may call stop() while this thread is inside read().
        self._lock = threading.RLock()
        self._tracker: Any = None
        self._stopped = False

    @property
    def running(self) -> bool:
        return self._tracker is not None

    def start(self) -> str | None:
        """Create and start the tracker (slow). Returns why it could not, or None."""
        # codecarbon sets its logger level from this variable when first imported.
        os.environ.setdefault(C.ENV_CODECARBON_LOG_LEVEL, "error")
        try:
            tracker_cls = importlib.import_module("codecarbon").OfflineEmissionsTracker
            for version_kwargs in _NO_FILE_KWARGS:
                try:
                    tracker = tracker_cls(**self._kwargs, **version_kwargs)
                    break
                except TypeError as exc:  # an older codecarbon without one of these arguments
                    error: Exception = exc
            else:
                raise error
            tracker.start()
        except Exception as exc:  # noqa: BLE001 - ImportError or anything codecarbon raises
            return f"codecarbon could not start ({type(exc).__name__}: {exc}); no carbon figures"
        with self._lock:
            if self._stopped:  # stop() came while we were starting: nothing to report
                tracker.stop()
                return None
            self._tracker = tracker
        if self.read() is None:  # codecarbon swallows its own errors; a None here means failure
            self.stop()
            return "codecarbon's tracker started but reports nothing; no carbon figures"
        return None

    def read(self) -> dict[str, float] | None:
        """Cumulative node energy (J) and emissions (kg CO2e) since start, or None if not running."""
        with self._lock:
            if self._tracker is None:
                return None
            emissions = self._tracker.flush()
            # flush() returns emissions only; energy is the tracker's running total (no public getter).
            energy = getattr(getattr(self._tracker, "_total_energy", None), "kWh", None)
        return _readings(energy, emissions)

    def stop(self) -> dict[str, float] | None:
        """Stop the tracker (idempotent) and return its final figures."""
        with self._lock:
            self._stopped = True
            tracker, self._tracker = self._tracker, None
            if tracker is None:
                return None
            tracker.stop()
            data = getattr(tracker, "final_emissions_data", None)
        if data is None:
            return None
        return _readings(getattr(data, "energy_consumed", None), getattr(data, "emissions", None))


def _readings(energy_kwh: Any, emissions_kg: Any) -> dict[str, float] | None:
    if emissions_kg is None:
        return None
    readings = {EMISSIONS_SERIES: float(emissions_kg)}
    if energy_kwh is not None:
        readings[ENERGY_SERIES] = float(energy_kwh) * _KWH_TO_J
    return readings
