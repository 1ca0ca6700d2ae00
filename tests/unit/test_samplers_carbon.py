"""codecarbon through the sampler: started on the sampler thread, silent, writing no file.

The real-tracker tests skip when the ``carbon`` extra is absent; the absent path is tested
with codecarbon hidden from the import system.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest

from yprov4ml_hpc._constants import ENV_NVML_REPLAY
from yprov4ml_hpc._errors import SamplerUnavailableWarning
from yprov4ml_hpc._samplers import DEFAULT_COUNTRY_ISO_CODE, SamplerSet
from yprov4ml_hpc._samplers._carbon import CarbonSampler
from yprov4ml_hpc._samplers._thread import THREAD_NAME

Row = tuple[str, float, str, int | None, int]
needs_codecarbon = pytest.mark.skipif(
    importlib.util.find_spec("codecarbon") is None,
    reason='codecarbon absent (pip install "yprov4ml-hpc[carbon]")',
)
H100 = Path(__file__).resolve().parents[1] / "fixtures" / "nvml" / "h100_trace.json"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # anything codecarbon writes into the cwd would show up here
    monkeypatch.delenv("CODECARBON_LOG_LEVEL", raising=False)  # restored after the test
    if H100.exists():  # GPU readings from the trace instead of a warning about the missing driver
        monkeypatch.setenv(ENV_NVML_REPLAY, str(H100))
    else:
        monkeypatch.setitem(sys.modules, "pynvml", None)


def _timers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if isinstance(t, threading.Timer)]


def test_absent_codecarbon_warns_once_and_sample_carbon_now_is_a_no_op(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "codecarbon", None)
    rows: list[Row] = []
    with pytest.warns(SamplerUnavailableWarning, match=r"yprov4ml-hpc\[carbon\]") as caught:
        sampler = SamplerSet(lambda *r: rows.append(r), interval_s=0, carbon=True)
        sampler.start()
        sampler.sample_carbon_now("training", 1)
        sampler.sample_carbon_now("training", 2)
        sampler.stop()
    assert len([w for w in caught if "codecarbon" in str(w.message)]) == 1
    assert not [r for r in rows if r[0].startswith("codecarbon")]


@needs_codecarbon
def test_real_tracker_records_node_energy_and_emissions(tmp_path: Path) -> None:
    rows: list[Row] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sampler = SamplerSet(lambda *r: rows.append(r), interval_s=0.2, carbon=True)
        t0 = time.perf_counter()
        sampler.start()
        assert time.perf_counter() - t0 < 0.5  # codecarbon's slow start is not on this thread
        deadline = time.monotonic() + 10
        while not any(r[0] == "codecarbon/emissions_kg" for r in rows) and time.monotonic() < deadline:
            time.sleep(0.05)
        sampler.sample_carbon_now(context="training", step=3)
        sampler.stop()
    assert [str(w.message) for w in caught if issubclass(w.category, SamplerUnavailableWarning)] == []
    assert [t for t in threading.enumerate() if t.name == THREAD_NAME] == []

    carbon = [r for r in rows if r[0].startswith("codecarbon/")]
    assert {(r[0], r[3]) for r in carbon if r[2] == "training"} == {
        ("codecarbon/energy_j", 3),
        ("codecarbon/emissions_kg", 3),
    }
    assert {r[2] for r in carbon} == {"training", "energy"}
    energy = [r[1] for r in carbon if r[0] == "codecarbon/energy_j" and r[2] == "energy"]
    assert energy == sorted(energy) and energy[-1] > 0  # cumulative
    assert sampler.energy_j()["codecarbon/energy_j"] == energy[-1]  # the final one, from stop()
    assert sampler.emissions_kg()["codecarbon/emissions_kg"] > 0
    assert sampler.methods["codecarbon/energy_j"] == "codecarbon_estimate"
    assert sampler.methods["codecarbon/emissions_kg"] == "codecarbon_estimate"
    assert sampler.info["carbon_country_iso_code"] == DEFAULT_COUNTRY_ISO_CODE
    assert list(tmp_path.iterdir()) == []  # no emissions.csv, no lock file in the cwd


@needs_codecarbon
def test_stop_right_after_start_is_bounded_and_leaves_nothing_running() -> None:
    rows: list[Row] = []
    sampler = SamplerSet(lambda *r: rows.append(r), interval_s=0.2, carbon=True)
    sampler.start()
    time.sleep(0.05)  # the thread is now starting codecarbon (1-2 s the first time in a process)
    t0 = time.perf_counter()
    sampler.stop()
    assert time.perf_counter() - t0 < 3.5
    count = len(rows)
    _wait_for_no_timers()
    assert _timers() == []
    assert len(rows) == count  # nothing recorded after stop()


@needs_codecarbon
def test_a_tracker_whose_start_ends_after_stop_is_stopped_by_the_starting_thread() -> None:
    # What happens when SamplerSet.stop() gives up joining a thread still inside start().
    carbon = CarbonSampler("USA", None, 1.0)
    assert carbon.stop() is None
    assert carbon.start() is None
    assert not carbon.running and carbon.read() is None
    _wait_for_no_timers()
    assert _timers() == []  # codecarbon's scheduler threads are gone


def _wait_for_no_timers() -> None:
    deadline = time.monotonic() + 5
    while _timers() and time.monotonic() < deadline:
        time.sleep(0.02)


def test_non_leaders_never_run_codecarbon() -> None:
    rows: list[Row] = []
    sampler = SamplerSet(lambda *r: rows.append(r), interval_s=0, carbon=True, is_node_leader=False)
    sampler.start()
    sampler.sample_carbon_now()
    sampler.stop()
    assert "codecarbon/energy_j" not in sampler.methods
    assert not [r for r in rows if r[0].startswith("codecarbon")]
