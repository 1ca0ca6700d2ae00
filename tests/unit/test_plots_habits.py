"""Plots of runs logged the way yProv4ML users log: every batch with step=epoch,
log_system_metrics() every batch, short jobs, codecarbon off or not installed."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from _runfactory import shared_run

import yprov4ml_hpc as prov4ml
from yprov4ml_hpc._cli import main
from yprov4ml_hpc._plots import _data as D
from yprov4ml_hpc._report._sampling import carbon_note, system_note
from yprov4ml_hpc._summaryfile import load_summary

pytest.importorskip("matplotlib")

from yprov4ml_hpc._plots import build_figures

DPI = 60
EPOCHS, BATCHES = 3, 20


def _habit_run(save_dir: Path, **start_kwargs: object) -> Path:
    """A singleton run logging every batch with step=epoch (and system metrics every batch)."""
    prov4ml.start_run("habit", provenance_save_dir=save_dir, **start_kwargs)
    for epoch in range(EPOCHS):
        for batch in range(BATCHES):
            prov4ml.log_metric("loss", 1.0 / (1 + epoch * BATCHES + batch), context="training", step=epoch)
            prov4ml.log_system_metrics(context="training", step=epoch)
    return prov4ml.end_run()


def _figures(run_dir: Path) -> tuple[dict[str, object], list[str]]:
    run = prov4ml.load_run(run_dir)
    figures = build_figures(run, load_summary(run.run_dir, run).data, dpi=DPI)
    return {f.stem: f for f in figures.figures}, figures.skipped


def test_repeated_steps_are_drawn_in_logging_order(tmp_path: Path) -> None:
    run = prov4ml.load_run(_habit_run(tmp_path, system_metrics_interval_s=0))
    loss = run.series("loss", "training", 0)
    assert loss.step.tolist() == [e for e in range(EPOCHS) for _ in range(BATCHES)]
    assert D.steps_repeat([loss])
    # Over its steps the series collapses to 3 x positions (the vertical bars users saw) ...
    assert D.band_over_steps([loss]).x.size == EPOCHS
    # ... in logging order every point keeps its own x, in the order logged.
    ordered = D.in_logging_order(loss)
    band = D.band_over_steps([ordered])
    assert band.x.size == EPOCHS * BATCHES
    assert np.array_equal(band.median, loss.value)
    assert D.step_starts(loss.step) == ([0, BATCHES, 2 * BATCHES], ["0", "1", "2"])
    figures, _ = _figures(run.run_dir)
    caption = figures["metric__training__loss"].caption  # type: ignore[attr-defined]
    assert "in logging order" in caption and "steps repeat" in caption


def test_unique_steps_still_plot_over_steps() -> None:
    run = prov4ml.load_run(shared_run("one"))
    series = [run.series("loss", "training", 0)]
    assert not D.steps_repeat(series)
    ticks, labels = D.step_starts(np.array([0, 0, 5, 5, 5, 9], dtype=np.int64))
    assert (ticks, labels) == ([0, 2, 5], ["0", "5", "9"])
    many = D.step_starts(np.repeat(np.arange(100), 3), max_ticks=10)
    assert len(many[0]) <= 10 and many[1][0] == "0"


def test_system_metrics_logged_every_batch_feed_the_hardware_figure(tmp_path: Path) -> None:
    """Series from log_system_metrics(context="training") are CPU series too: the figure is
    drawn, not skipped with "system metrics were off"."""
    figures, skipped = _figures(_habit_run(tmp_path, system_metrics_interval_s=0))
    assert "hardware" in figures, skipped
    assert not any(s.startswith("hardware") for s in skipped)


def test_a_run_shorter_than_the_sampling_interval_still_has_system_series(tmp_path: Path) -> None:
    prov4ml.start_run("short", provenance_save_dir=tmp_path, system_metrics_interval_s=60)
    prov4ml.log_metric("loss", 1.0, context="training")
    run = prov4ml.load_run(prov4ml.end_run())
    keys = {(name, ctx) for name, ctx, _ in run.series_keys()}
    assert ("process/cpu_pct", "system") in keys and ("node/cpu_pct", "system") in keys
    figures, _ = _figures(run.run_dir)
    assert "hardware" in figures


def test_system_metrics_off_says_off(tmp_path: Path) -> None:
    prov4ml.start_run("off", provenance_save_dir=tmp_path, system_metrics_interval_s=0)
    prov4ml.log_metric("loss", 1.0, context="training")
    run = prov4ml.load_run(prov4ml.end_run())
    assert "system metrics off" in system_note(run)
    _, skipped = _figures(run.run_dir)
    (hardware,) = [s for s in skipped if s.startswith("hardware")]
    assert "system_metrics_interval_s=0" in hardware and "log_system_metrics() never called" in hardware


def test_codecarbon_disabled_and_not_installed_are_told_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prov4ml.start_run("cc_off", provenance_save_dir=tmp_path / "a", system_metrics_interval_s=0)
    off = prov4ml.load_run(prov4ml.end_run())  # conftest: YPROV4ML_HPC_CARBON=0
    monkeypatch.setenv("YPROV4ML_HPC_CARBON", "1")
    monkeypatch.setitem(sys.modules, "codecarbon", None)  # as if not installed
    with pytest.warns(prov4ml.SamplerUnavailableWarning, match="codecarbon is not installed"):
        prov4ml.start_run("cc_missing", provenance_save_dir=tmp_path / "b", system_metrics_interval_s=0)
    missing = prov4ml.load_run(prov4ml.end_run())
    assert carbon_note(off).startswith("codecarbon off") and "not installed" not in carbon_note(off)
    assert carbon_note(missing).startswith("codecarbon not installed") and "[carbon]" in carbon_note(missing)
    for run, word in ((off, "codecarbon off"), (missing, "codecarbon not installed")):
        _, skipped = _figures(run.run_dir)
        (energy,) = [s for s in skipped if s.startswith("energy")]
        assert word in energy
        report = run.run_dir / "report.html"
        assert main(["report", str(run.run_dir), "-o", str(report)]) == 0
        assert word in report.read_text()


def test_heat_map_of_an_even_job_is_left_out_with_a_reason() -> None:
    run = prov4ml.load_run(shared_run("crash"))  # 3 ranks, no GPU series
    data = load_summary(run.run_dir, run).data
    for entry, wall in zip(data["ranks"], (10.0, 10.2, 10.1), strict=True):
        entry["wall_time_s"], entry["steps"] = wall, 100
    figures = build_figures(run, data, dpi=DPI)
    assert "ranks" not in {f.stem for f in figures.figures}
    (note,) = [s for s in figures.skipped if s.startswith("ranks")]
    assert "within 5%" in note and "no rank stands out" in note
    data["ranks"][1]["wall_time_s"] = 13.0  # one rank 30 % slower: drawn
    figures = build_figures(run, data, dpi=DPI)
    assert "ranks" in {f.stem for f in figures.figures}


def test_heat_map_colours_a_missing_value_unlike_the_median() -> None:
    from yprov4ml_hpc._plots._figures import _colormap

    cmap = _colormap()
    median = np.array(cmap(0.5)[:3])
    missing = np.array(cmap.get_bad()[:3])
    assert np.abs(median - missing).max() > 0.3
    ratio = D.log2_ratio_to_median([[1.0, 2.0, float("nan"), 0.5, 0.0]])
    assert ratio[0, 0] == 0.0 and ratio[0, 1] == 1.0 and ratio[0, 3] == -1.0
    assert np.isnan(ratio[0, 2]) and np.isnan(ratio[0, 4])
