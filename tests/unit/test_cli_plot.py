"""`yprov4ml-hpc plot`: which files it writes, --metric, and its errors (one line, exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
from _runfactory import assert_user_error, cli, shared_run

pytest.importorskip("matplotlib")

BLOCK_MATPLOTLIB = "import sys; sys.modules['matplotlib'] = None\n"  # import matplotlib -> ImportError


def test_plot_writes_every_figure(tmp_path: Path) -> None:
    proc = cli("plot", str(shared_run("eight")), "-o", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    written = [Path(line) for line in proc.stdout.splitlines() if line.endswith(".png")]
    assert {p.name for p in written} == {
        "metric__training__loss.png",
        "metric__training__accuracy.png",
        "metric__validation__val_loss.png",
        "hardware.png",
        "energy.png",
        "ranks.png",
    }
    assert all(p.parent == tmp_path and p.stat().st_size > 10_000 for p in written)
    assert not (shared_run("eight") / "plots").exists()


def test_plot_default_output_is_the_run_directory(tmp_path: Path) -> None:
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(shared_run("one"), run_dir)
    proc = cli("plot", str(run_dir))
    assert proc.returncode == 0, proc.stderr
    assert (run_dir / "plots" / "metric__training__loss.png").is_file()
    assert "not drawn: ranks: a single rank" in proc.stdout


def test_plot_metric_selection(tmp_path: Path) -> None:
    proc = cli("plot", str(shared_run("eight")), "-o", str(tmp_path), "--metric", "loss", "--metric", "val_*")
    assert proc.returncode == 0, proc.stderr
    names = sorted(p.name for p in tmp_path.glob("metric__*.png"))
    assert names == ["metric__training__loss.png", "metric__validation__val_loss.png"]


def test_plot_unknown_metric_lists_what_there_is(tmp_path: Path) -> None:
    proc = cli("plot", str(shared_run("one")), "-o", str(tmp_path), "--metric", "nope")
    assert_user_error(proc, "no metric matches 'nope'", "loss")


def test_plot_without_matplotlib_names_the_extra(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCK_MATPLOTLIB)
    import os

    env = {"PYTHONPATH": os.pathsep.join([str(site), str(Path(__file__).resolve().parents[2])])}
    proc = cli("plot", str(shared_run("one")), "-o", str(tmp_path / "out"), env=env)
    assert_user_error(proc, 'pip install "yprov4ml-hpc[plot]"')
    assert not (tmp_path / "out").exists()


def test_plot_errors_are_one_line(tmp_path: Path) -> None:
    assert_user_error(cli("plot", str(tmp_path / "missing")), "no such directory")
    assert_user_error(cli("plot", str(tmp_path)), "not a yprov4ml_hpc run directory")
    damaged = tmp_path / "damaged"
    (damaged / "ranks").mkdir(parents=True)
    (damaged / "ranks" / "rank_000000.h5").write_bytes(b"garbage")
    assert_user_error(cli("plot", str(damaged)), "no readable rank file")
    assert_user_error(cli("plot", str(shared_run("one")), "--dpi", "5"), "--dpi")
