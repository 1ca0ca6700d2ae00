"""The NVML sampler driven by a real H100/H200 trace through the replay backend.

A fake clock steps through the trace deterministically; the replay backend and the real
pynvml one go through the same SamplerSet/GpuSampler code.
"""

from __future__ import annotations

import itertools
import json
import warnings
from pathlib import Path
from typing import Any

import pytest

from yprov4ml_hpc._constants import ENV_NVML_REPLAY
from yprov4ml_hpc._errors import SamplerUnavailableWarning
from yprov4ml_hpc._samplers import SamplerSet

NVML_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "nvml"
H100 = NVML_FIXTURES / "h100_trace.json"

Row = tuple[str, float, str, int | None, int]


class FakeClock:
    """Nanoseconds set by the test; ``at(t)`` moves it to ``t`` seconds after the start."""

    def __init__(self, origin_ns: int = 1_700_000_000_000_000_000) -> None:
        self.origin_ns = origin_ns
        self.now_ns = origin_ns

    def __call__(self) -> int:
        return self.now_ns

    def at(self, t_s: float) -> None:
        self.now_ns = self.origin_ns + round(t_s * 1e9)


def _series(rows: list[Row], name: str, context: str | None = None) -> list[Row]:
    return [r for r in rows if r[0] == name and (context is None or r[2] == context)]


def _load(path: Path) -> list[dict[str, Any]]:
    samples: list[dict[str, Any]] = json.loads(path.read_text())["samples"]
    return samples


@pytest.fixture
def rows() -> list[Row]:
    return []


def _sampler(rows: list[Row], clock: FakeClock, **kwargs: Any) -> SamplerSet:
    """No thread (interval 0, no codecarbon): the test drives every sample."""
    kwargs.setdefault("is_node_leader", False)  # keep node-wide psutil/RAPL out of these tests
    return SamplerSet(lambda *r: rows.append(r), interval_s=0, carbon=False, clock_ns=clock, **kwargs)


@pytest.mark.parametrize("trace", ["h100_trace.json", "h200_trace.json"])
def test_series_equal_the_trace_at_every_sampled_time(
    trace: str, rows: list[Row], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_NVML_REPLAY, str(NVML_FIXTURES / trace))
    samples, clock = _load(NVML_FIXTURES / trace), FakeClock()
    sampler = _sampler(rows, clock)
    sampler.start()
    assert sampler.gpus == [0]
    for sample in samples:
        clock.at(sample["t"])
        sampler.sample_now()
    sampler.stop()
    expected = {
        "gpu0/power_w": [s["power_mw"] / 1000 for s in samples],
        "gpu0/utilization_pct": [s["util"]["gpu"] for s in samples],
        "gpu0/memory_utilization_pct": [s["util"]["memory"] for s in samples],
        "gpu0/memory_used_bytes": [s["mem"]["used"] for s in samples],
        "gpu0/temperature_c": [s["temp_c"] for s in samples],
        "gpu0/sm_clock_mhz": [s["sm_clock_mhz"] for s in samples],
    }
    times = [clock.origin_ns + round(s["t"] * 1e9) for s in samples]
    for name, values in expected.items():
        series = _series(rows, name, "gpu")
        assert [r[1] for r in series] == values, name
        assert [r[4] for r in series] == times, name
        assert all(r[3] is None for r in series)  # auto-increment steps
    assert max(expected["gpu0/power_w"]) > 600  # the load phase really is in there


def test_between_samples_the_latest_earlier_sample_is_served(
    rows: list[Row], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_NVML_REPLAY, str(H100))
    samples, clock = _load(H100), FakeClock()
    sampler = _sampler(rows, clock)
    sampler.start()
    for t in (samples[40]["t"] - 1e-6, samples[40]["t"], 1e6):
        clock.at(t)
        sampler.sample_now()
    sampler.stop()
    power = [r[1] for r in _series(rows, "gpu0/power_w")]
    assert power == [
        samples[39]["power_mw"] / 1000,
        samples[40]["power_mw"] / 1000,
        samples[-1]["power_mw"] / 1000,
    ]


def test_energy_is_the_counter_difference_over_the_window(
    rows: list[Row], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_NVML_REPLAY, str(H100))
    samples, clock = _load(H100), FakeClock()
    sampler = _sampler(rows, clock)
    sampler.start()  # first counter read: the baseline at t = 0
    clock.at(samples[-1]["t"])
    sampler.stop()  # final counter read
    assert sampler.energy_j() == {
        "gpu0/energy_j": (samples[-1]["energy_mj"] - samples[0]["energy_mj"]) / 1000
    }
    assert sampler.methods == {"gpu0/energy_j": "nvml_energy_counter"}
    energy = _series(rows, "gpu0/energy_j", "energy")
    assert [r[1] for r in energy] == [0.0, sampler.energy_j()["gpu0/energy_j"]]


def test_load_phase_energy_and_the_one_hertz_counter_limit(
    rows: list[Row], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The thread's tick, run at every trace sample (~10 Hz), reads the counter at <= 1 Hz."""
    monkeypatch.setenv(ENV_NVML_REPLAY, str(H100))
    samples, clock = _load(H100), FakeClock()
    sampler = _sampler(rows, clock)
    sampler.start()
    for sample in samples:
        clock.at(sample["t"])
        sampler._tick()  # the background thread's body, driven synchronously
    sampler.stop()
    energy = {r[4]: r[1] for r in _series(rows, "gpu0/energy_j", "energy")}
    periodic = list(energy)[:-1]  # the last read is stop()'s, which is never skipped
    assert min(b - a for a, b in itertools.pairwise(periodic)) >= 1_000_000_000
    assert 15 <= len(energy) <= 30  # ~24 s of trace: about one read a second

    load = [s for s in samples if s["phase"] == "load"]
    t_first, t_last = (clock.origin_ns + round(s["t"] * 1e9) for s in (load[0], load[-1]))
    read_times = [t for t in energy if t_first <= t <= t_last]
    start, end = read_times[0], read_times[-1]
    by_time = {clock.origin_ns + round(s["t"] * 1e9): s for s in samples}
    counter_j = (by_time[end]["energy_mj"] - by_time[start]["energy_mj"]) / 1000
    assert counter_j > 5000  # most of the 12 s load at ~700 W
    assert energy[end] - energy[start] == pytest.approx(counter_j, abs=1e-6)

    # Cross-check with the integrated power series (trapezoid): same energy within 5 %
    # (NVML power is averaged over ~1 s, so it lags the counter while the load ramps).
    power = [(r[4], r[1]) for r in _series(rows, "gpu0/power_w") if start <= r[4] <= end]
    assert _trapezoid_j(power) == pytest.approx(counter_j, rel=0.05)
    whole = [(r[4], r[1]) for r in _series(rows, "gpu0/power_w")]
    assert _trapezoid_j(whole) == pytest.approx(sampler.energy_j()["gpu0/energy_j"], rel=0.01)


def _trapezoid_j(points: list[tuple[int, float]]) -> float:
    """Energy (J) of (time_ns, W) points by the trapezoid rule: the test-only cross-check."""
    return sum((p0 + p1) / 2 * (t1 - t0) / 1e9 for (t0, p0), (t1, p1) in itertools.pairwise(points))


def test_sample_now_reads_the_energy_counter_only_the_first_time(
    rows: list[Row], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_NVML_REPLAY, str(H100))
    clock = FakeClock()
    sampler = _sampler(rows, clock)  # never started: sample_now opens the samplers itself
    for t in (0.0, 2.0, 9.0, 15.0):
        clock.at(t)
        sampler.sample_now(context="training", step=int(t))
    assert [(r[1], r[2], r[4]) for r in _series(rows, "gpu0/energy_j")] == [(0.0, "energy", clock.origin_ns)]
    power = _series(rows, "gpu0/power_w")
    assert [(r[2], r[3]) for r in power] == [
        ("training", 0),
        ("training", 2),
        ("training", 9),
        ("training", 15),
    ]
    sampler.stop()


def test_unsupported_fan_is_skipped_without_warnings(
    rows: list[Row], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_NVML_REPLAY, str(H100))
    samples, clock = _load(H100), FakeClock()
    assert "error" in samples[0]["fan"]  # the H100 answers 'Not Supported'
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sampler = _sampler(rows, clock)
        sampler.start()
        for sample in samples:
            clock.at(sample["t"])
            sampler.sample_now()
        sampler.stop()
    assert [str(w.message) for w in caught] == []
    assert not any("fan" in r[0] for r in rows)


def _write_trace(path: Path, samples: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"meta": {"device_count": 1, "uuid": "GPU-test"}, "samples": samples}))
    return path


def _synthetic(n: int = 20, **overrides: Any) -> list[dict[str, Any]]:
    base = {
        "util": {"gpu": 50, "memory": 10},
        "mem": {"used": 1, "free": 2, "total": 3},
        "temp_c": 40,
        "sm_clock_mhz": 1000,
        "fan": 30,
    }
    return [
        {"t": i * 0.5, "power_mw": 100_000 + 1000 * i, "energy_mj": 50_000 * i, **base, **overrides}
        for i in range(n)
    ]


def test_other_query_errors_warn_once_and_drop_the_query(
    tmp_path: Path, rows: list[Row], monkeypatch: pytest.MonkeyPatch
) -> None:
    trace = _write_trace(
        tmp_path / "t.json", _synthetic(temp_c={"error": "NVMLError_GpuIsLost: GPU is lost"})
    )
    monkeypatch.setenv(ENV_NVML_REPLAY, str(trace))
    clock = FakeClock()
    with pytest.warns(SamplerUnavailableWarning, match="temperature") as caught:
        sampler = _sampler(rows, clock)
        sampler.start()
        for i in range(20):
            clock.at(i * 0.5)
            sampler.sample_now()
        sampler.stop()
    assert len(caught) == 1
    assert not _series(rows, "gpu0/temperature_c")
    assert len(_series(rows, "gpu0/fan_speed_pct")) == 20  # a supported fan is sampled
    assert len(_series(rows, "gpu0/power_w")) == 20


def test_missing_energy_counter_falls_back_to_power_integration(
    tmp_path: Path, rows: list[Row], monkeypatch: pytest.MonkeyPatch
) -> None:
    trace = _write_trace(
        tmp_path / "t.json", _synthetic(energy_mj={"error": "NVMLError_NotSupported: Not Supported"})
    )
    monkeypatch.setenv(ENV_NVML_REPLAY, str(trace))
    clock = FakeClock()
    sampler = _sampler(rows, clock)
    sampler.start()
    for i in range(1, 20):
        clock.at(i * 0.5)
        sampler.sample_now()
    sampler.stop()
    assert sampler.methods == {"gpu0/energy_j": "nvml_power_integration"}
    # power rises linearly 100 W -> 119 W over 9.5 s: the trapezoid is exact
    assert sampler.energy_j()["gpu0/energy_j"] == pytest.approx((100 + 119) / 2 * 9.5)


def test_unreadable_trace_warns_once_and_samples_no_gpu(
    tmp_path: Path, rows: list[Row], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_NVML_REPLAY, str(tmp_path / "missing.json"))
    with pytest.warns(SamplerUnavailableWarning, match="missing.json") as caught:
        sampler = _sampler(rows, FakeClock(), is_node_leader=True)
        sampler.start()
        sampler.sample_now()
        sampler.stop()
    assert len([w for w in caught if "NVML" in str(w.message)]) == 1
    assert sampler.gpus == [] and sampler.methods.keys().isdisjoint({"gpu0/energy_j"})
    assert not [r for r in rows if r[0].startswith("gpu")]
    assert _series(rows, "process/rss_bytes")


def test_a_rank_owning_no_gpu_records_none(rows: list[Row], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_NVML_REPLAY, str(H100))
    sampler = _sampler(rows, FakeClock(), local_rank=1, local_size=2)  # the one GPU is local rank 0's
    sampler.start()
    sampler.sample_now()
    sampler.stop()
    assert sampler.gpus == []
    assert sampler.energy_j() == {}
    assert not [r for r in rows if r[0].startswith("gpu")]
    assert sampler.info["gpu_uuids"] == {"0": "GPU-dd935d04-f4da-b885-b7d9-55cdb94c961e"}


class _DriverStub:
    """Just enough of the ``pynvml`` module for PynvmlBackend, raising nvidia-ml-py's own errors.

    This machine has no GPU, so the real-driver backend is checked for its error mapping and
    units against the installed nvidia-ml-py exception classes and constants.
    """

    def __init__(self, nvml: Any) -> None:
        self.NVMLError = nvml.NVMLError
        self.NVML_ERROR_NOT_SUPPORTED = nvml.NVML_ERROR_NOT_SUPPORTED
        self.NVML_TEMPERATURE_GPU = nvml.NVML_TEMPERATURE_GPU
        self.NVML_CLOCK_SM = nvml.NVML_CLOCK_SM
        self._nvml, self.shutdowns = nvml, 0

    def nvmlInit(self) -> None: ...
    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        if index == 1:
            raise self._nvml.NVMLError(self._nvml.NVML_ERROR_NO_PERMISSION)
        return 100 + index

    def nvmlDeviceGetUUID(self, handle: int) -> bytes:
        return b"GPU-stub"  # old nvidia-ml-py versions return bytes

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        return 71_504

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: int) -> int:
        return 3_264_520

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> Any:
        return type("Rates", (), {"gpu": 99, "memory": 35})()

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> Any:
        return type("Mem", (), {"used": 1, "free": 2, "total": 3})()

    def nvmlDeviceGetTemperature(self, handle: int, sensor: int) -> int:
        assert sensor == self.NVML_TEMPERATURE_GPU
        return 34

    def nvmlDeviceGetClockInfo(self, handle: int, clock: int) -> int:
        assert clock == self.NVML_CLOCK_SM
        return 1980

    def nvmlDeviceGetFanSpeed(self, handle: int) -> int:
        raise self._nvml.NVMLError(self._nvml.NVML_ERROR_NOT_SUPPORTED)


def test_pynvml_backend_maps_units_and_errors() -> None:
    nvml = pytest.importorskip("pynvml")
    from yprov4ml_hpc._samplers._gpu import GpuSampler
    from yprov4ml_hpc._samplers._nvml import NvmlNotSupported, NvmlQueryError, PynvmlBackend

    stub = _DriverStub(nvml)
    backend = PynvmlBackend(stub)
    assert backend.device_count() == 2 and backend.uuid(0) == "GPU-stub"
    with pytest.raises(NvmlNotSupported):
        backend.fan_speed_pct(0)
    with pytest.raises(NvmlQueryError, match="NoPermission") as denied:
        backend.power_mw(1)
    assert not isinstance(denied.value, NvmlNotSupported)

    warned: list[str] = []
    sampler = GpuSampler(backend, [0, 1], warned.append)
    assert sampler.read(0) == {
        "gpu0/power_w": 71.504,
        "gpu0/utilization_pct": 99.0,
        "gpu0/memory_utilization_pct": 35.0,
        "gpu0/memory_used_bytes": 1.0,
        "gpu0/temperature_c": 34.0,
        "gpu0/sm_clock_mhz": 1980.0,
    }
    assert sampler.read_energy(0) == {"gpu0/energy_j": 0.0}
    assert sampler.methods == {"gpu0/energy_j": "nvml_energy_counter"}  # GPU 1 lost its energy
    assert len(warned) == 1 and "GPU 1" in warned[0]  # every query of GPU 1 failed: one warning
    sampler.read(1)
    sampler.read_energy(1)
    assert len(warned) == 1
    backend.close()
    assert stub.shutdowns == 1
