"""Figures of runs with 1 and 8 ranks: the files exist, have the expected size, are not blank."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _runfactory import shared_run

import yprov4ml_hpc as prov4ml
from yprov4ml_hpc._plots import _data as D
from yprov4ml_hpc._reader import Series
from yprov4ml_hpc._summaryfile import load_summary

mpl_image = pytest.importorskip("matplotlib.image")

from yprov4ml_hpc._plots import build_figures, write_figures  # noqa: E402  (after the skip)

DPI = 80
# (width, height) in inches of each kind of figure, as drawn by _plots._figures.
INCHES = {
    "metric": (8.0, 4.2),
    "hardware": (8.0, 1.2 + 2.0 * 3),
    "energy": (8.0, 5.6),
    "ranks": (8.0, 1.6 + 0.55 * 3),
}


def _kind(path: Path) -> str:
    return "metric" if path.name.startswith("metric__") else path.stem


def _check_png(path: Path) -> None:
    pixels = mpl_image.imread(path)[..., :3]
    width, height = (round(v * DPI) for v in INCHES[_kind(path)])
    assert pixels.shape[:2] == (height, width), path.name
    # Not blank: real variation, and a fair share of pixels that are not the white background.
    assert float(pixels.var()) > 0.003, path.name
    drawn = np.any(pixels < 0.9, axis=-1).mean()
    assert drawn > 0.02, (path.name, drawn)


@pytest.mark.parametrize(("name", "ranks"), [("one", 1), ("eight", 8)])
def test_figures_of_a_run(tmp_path: Path, name: str, ranks: int) -> None:
    run = prov4ml.load_run(shared_run(name))
    figures = build_figures(run, load_summary(run.run_dir, run).data, dpi=DPI)
    paths = write_figures(figures, tmp_path)
    expected = {
        "metric__training__loss",
        "metric__training__accuracy",
        "metric__validation__val_loss",
        "hardware",
        "energy",
    } | ({"ranks"} if ranks > 1 else set())
    assert {p.stem for p in paths} == expected
    for path in paths:
        _check_png(path)
    loss = next(f for f in figures.figures if f.stem == "metric__training__loss")
    assert ("one line per rank" in loss.caption) == (ranks == 1)
    assert ("median over ranks" in loss.caption) == (ranks == 8)
    if ranks == 1:
        assert figures.skipped == ["ranks: a single rank: nothing to compare it with"]


def test_run_without_hardware_series_skips_those_figures(tmp_path: Path) -> None:
    run = prov4ml.load_run(shared_run("crash"))
    figures = build_figures(run, load_summary(run.run_dir, run).data, dpi=DPI)
    stems = {f.stem for f in figures.figures}
    assert "energy" not in stems
    assert any(s.startswith("energy: no energy series") for s in figures.skipped)
    # The heat map compares real wall times, which depend on the machine's load: drawn, or
    # left out with its reason (tests/unit/test_plots_habits.py pins down which).
    assert "ranks" in stems or any(s.startswith("ranks: ") for s in figures.skipped), figures.skipped


def _series(rank: int, step: np.ndarray, value: np.ndarray, time_s: np.ndarray | None = None) -> Series:
    t = (np.arange(step.size) if time_s is None else time_s) * 1_000_000_000
    return Series("m", "c", rank, step.astype(np.int64), value.astype(np.float64), t.astype(np.int64))


def test_band_over_steps_exact_and_binned() -> None:
    a = _series(0, np.arange(10), np.arange(10.0))
    b = _series(1, np.arange(0, 10, 2), np.full(5, 100.0))
    band = D.band_over_steps([a, b])
    assert band.count == 2 and band.x.tolist() == list(range(10))
    assert band.high[0] == 100.0 and band.low[0] == 0.0 and band.high[1] == 1.0  # rank 1 has no step 1
    long = _series(0, np.arange(100_000), np.ones(100_000))
    binned = D.band_over_steps([long], max_points=500)
    assert binned.x.size == 500 and np.allclose(binned.median, 1.0)


def test_bands_skip_non_finite_values() -> None:
    s = _series(0, np.arange(4), np.array([1.0, np.inf, np.nan, 4.0]))
    band = D.band_over_steps([s])
    assert band.median[0] == 1.0 and np.isnan(band.median[1]) and np.isnan(band.median[2])
    timed = D.band_over_time([s], 0, points=4)
    assert np.isfinite(timed.median).all()  # interpolated over the gap
    assert D.band_over_steps([]).count == 0


def test_cumulative_sum_holds_last_value_and_starts_at_zero() -> None:
    early = _series(0, np.arange(3), np.array([0.0, 1.0, 2.0]), np.array([0.0, 1.0, 2.0]))
    late = _series(1, np.arange(2), np.array([5.0, 10.0]), np.array([3.0, 4.0]))
    t, total = D.cumulative_sum_over_time([early, late], 0, points=5)
    assert t.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert total.tolist() == [0.0, 1.0, 2.0, 7.0, 12.0]
    _mid, rate = D.rate_of(t, total)
    assert rate.tolist() == [1.0, 1.0, 5.0, 5.0]


def test_safe_filename() -> None:
    assert D.safe_filename("metric", "training", "train/loss (ema) ü") == "metric__training__train_loss_ema"
    assert len(D.safe_filename("m", "x" * 300)) == 80
