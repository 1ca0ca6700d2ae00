"""Writer-side errors: bad names and vanished folders give a clear Yprov4mlError at the call."""

from __future__ import annotations

import warnings
from pathlib import Path, PurePosixPath

import pytest

import yprov4ml_hpc as prov4ml
from yprov4ml_hpc._artifacts import safe_relative_name
from yprov4ml_hpc._context import context_name
from yprov4ml_hpc._names import check_name

QUIET = {"flush_interval_s": 0, "system_metrics_interval_s": 0, "install_signal_handlers": False}


def test_lone_surrogate_names_are_refused() -> None:
    with pytest.raises(ValueError, match="surrogate"):
        check_name("metric name", "a\udc80")
    with pytest.raises(ValueError, match="surrogate"):
        context_name("ctx\ud800")
    assert check_name("metric name", "é😀") == "é😀"


def test_long_components_are_shortened_uniquely() -> None:
    a, b = safe_relative_name("x" * 300 + ".pt"), safe_relative_name("x" * 299 + "y.pt")
    assert a != b
    for path in (a, b):
        assert len(path.name.encode()) <= 255 and path.suffix == ".pt"
    assert safe_relative_name("x" * 300 + ".pt") == a  # deterministic
    long_utf8 = safe_relative_name("é" * 200)
    assert len(long_utf8.name.encode()) <= 255
    assert safe_relative_name("dir/model.pt") == PurePosixPath("dir/model.pt")


def test_param_value_with_surrogate_is_refused_and_run_goes_on(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = prov4ml.start_run("s", provenance_save_dir=tmp_path, **QUIET)
        prov4ml.log_metric("m", 1.0)
        with pytest.raises(prov4ml.ConfigError, match="'p'"):
            prov4ml.log_param("p", "v\ud800")
        prov4ml.log_param("q", 2)
        prov4ml.end_run()
    data = prov4ml.load_run(run.run_dir)
    assert data.params() == {"q": 2} and data.series("m").value.tolist() == [1.0]


def test_deleted_rank_file_is_reported_and_run_ends(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = prov4ml.start_run("d", provenance_save_dir=tmp_path, **QUIET)
        # A running rank writes its journal; the .h5 appears at end_run.
        (run.run_dir / "ranks" / "rank_000000.journal").unlink()
        prov4ml.log_metric("m", 1.0)  # never raises for disk trouble
        with pytest.raises(prov4ml.StorageError, match=r"rank_000000\.journal.*gone"):
            run.flush()
        with pytest.raises(prov4ml.StorageError, match=r"rank_000000\.journal.*gone"):
            prov4ml.end_run()
    assert not (run.run_dir / "ranks" / "rank_000000.h5").exists()  # nothing folded from a lost journal
    assert prov4ml.active_run() is None and run.ended


def test_artifacts_folder_is_not_recreated(tmp_path: Path) -> None:
    source = tmp_path / "w.bin"
    source.write_bytes(b"w")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = prov4ml.start_run("a", provenance_save_dir=tmp_path / "save", **QUIET)
        (run.run_dir / "artifacts").rmdir()
        with pytest.raises(prov4ml.StorageError, match="artifacts"):
            prov4ml.log_artifact("w.bin", source)
        assert not (run.run_dir / "artifacts").exists()
        prov4ml.end_run()
