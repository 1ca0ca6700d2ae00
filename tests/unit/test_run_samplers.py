"""The samplers wired into a Run: series land in the rank file, energy facts in its attributes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import yprov4ml_hpc as prov4ml

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

TRACE = FIXTURES / "nvml" / "h100_trace.json"


@pytest.fixture
def replay(monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("YPROV4ML_HPC_NVML_REPLAY", str(TRACE))
    return TRACE


def test_log_system_metrics_records_a_step_tied_sample(tmp_path: Path, replay: Path) -> None:
    prov4ml.start_run("sys", provenance_save_dir=tmp_path, system_metrics_interval_s=0)
    for epoch in range(3):
        prov4ml.log_system_metrics(prov4ml.Context.TRAINING, step=epoch)
    data = prov4ml.load_run(prov4ml.end_run())
    keys = set(data.series_keys())
    assert ("process/rss_bytes", "training", 0) in keys
    assert ("gpu0/power_w", "training", 0) in keys
    assert data.series("process/rss_bytes", "training", 0).step.tolist() == [0, 1, 2]
    power = data.series("gpu0/power_w", "training", 0).value
    assert 50 < power.min() <= power.max() < 800  # watts from the H100 trace
    attrs = data.ranks[0].attrs
    assert '"gpu0/energy_j": "nvml_energy_counter"' in attrs["energy_methods"]
    assert attrs["gpu_ids"] == "[0]"
    # The energy series is cumulative from 0 and ends at the figure kept in the attributes.
    energy = data.series("gpu0/energy_j", "energy", 0).value
    assert energy[0] == 0.0 and energy[-1] >= 0.0


def test_background_sampling_without_touching_the_loop(tmp_path: Path, replay: Path) -> None:
    import time

    prov4ml.start_run("bg", provenance_save_dir=tmp_path, system_metrics_interval_s=0.05)
    time.sleep(0.6)
    data = prov4ml.load_run(prov4ml.end_run())
    rss = data.series("process/rss_bytes", "system", 0)
    assert len(rss) >= 3
    assert (rss.time_ns[1:] >= rss.time_ns[:-1]).all()
    assert len(data.series("gpu0/utilization_pct", "gpu", 0)) >= 3


def test_log_carbon_metrics_without_codecarbon_does_not_raise(tmp_path: Path) -> None:
    prov4ml.start_run(
        "carbon", provenance_save_dir=tmp_path, system_metrics_interval_s=0, disable_codecarbon=True
    )
    prov4ml.log_carbon_metrics(step=0)  # disabled: a no-op, never an error in the training loop
    prov4ml.log_metric("loss", 1.0)
    assert prov4ml.load_run(prov4ml.end_run()).series("loss").value.tolist() == [1.0]


def test_a_run_shorter_than_the_interval_has_a_sample_at_start_and_at_end(tmp_path: Path) -> None:
    """system_metrics_interval_s=3600 and a run of a moment: one psutil sample at start_run and
    one at end_run (README promise), so even a short or SIGTERMed run keeps system metrics."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = prov4ml.start_run("short", provenance_save_dir=tmp_path, system_metrics_interval_s=3600,
                                flush_interval_s=0, install_signal_handlers=False)
        started = time.time_ns()
        prov4ml.log_metric("loss", 1.0)
        ended = time.time_ns()
        prov4ml.end_run()
    data = prov4ml.load_run(run.run_dir)
    system = [key for key in data.series_keys() if key[1] == "system"]
    assert system, data.series_keys()
    for name, context, rank in system:
        times = data.series(name, context, rank).time_ns
        assert len(times) == 2, (name, times)
        assert times[0] <= started and times[1] >= ended, (name, times, started, ended)
