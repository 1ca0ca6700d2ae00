"""Values users pass, and bad input: clear errors naming the value, never silent loss."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import only_run_dir, run_script, start_quiet_run

import yprov4ml_hpc as prov4ml


def _start(tmp_path: Path, **kwargs: object) -> prov4ml.Run:
    return start_quiet_run(tmp_path, "values", **kwargs)


def test_nested_numpy_scalars_and_paths_are_stored_as_params(tmp_path: Path) -> None:
    _start(tmp_path)
    config = {
        "seed": np.int64(3),
        "rates": [np.float32(0.5), np.float64(0.25)],
        "data": Path("/d/x"),
        "inner": {"flag": np.bool_(True), "shape": (np.int32(2), 3)},
    }
    prov4ml.log_param("config", config)
    params = prov4ml.load_run(prov4ml.end_run()).params(0)
    assert params["config"] == {
        "seed": 3,
        "rates": [0.5, 0.25],
        "data": "/d/x",
        "inner": {"flag": True, "shape": [2, 3]},
    }


@pytest.mark.parametrize("value", [1 + 2j, np.complex128(1 + 2j), np.complex64(1 - 1j)])
def test_complex_metric_values_are_refused(tmp_path: Path, value: object) -> None:
    _start(tmp_path)
    with pytest.raises(TypeError, match="real number"):
        prov4ml.log_metric("z", value)
    prov4ml.log_metric("z", 1.0)
    run = prov4ml.load_run(prov4ml.end_run())
    assert run.series("z").value.tolist() == [1.0]


@pytest.mark.parametrize("timestamp", [2**70, 1e11, -5])
def test_out_of_range_timestamp_is_refused_and_does_not_advance_the_step(
    tmp_path: Path, timestamp: object
) -> None:
    _start(tmp_path)
    prov4ml.log_metric("t", 1.0)
    with pytest.raises(ValueError, match=r"metric 't': timestamp .*outside"):
        prov4ml.log_metric("t", 2.0, timestamp=timestamp)
    prov4ml.log_metric("t", 3.0)
    series = prov4ml.load_run(prov4ml.end_run()).series("t")
    assert series.step.tolist() == [0, 1] and series.value.tolist() == [1.0, 3.0]


def test_logging_through_an_ended_run_raises(tmp_path: Path) -> None:
    run = _start(tmp_path)
    run.log_metric("a", 1.0)
    run.log_metrics({"b": 1.0})
    prov4ml.end_run()
    for call in (
        lambda: run.log_metric("a", 2.0),
        lambda: run.log_metrics({"b": 2.0}),
        lambda: run.log_param("p", 1),
    ):
        with pytest.raises(prov4ml.RunStateError, match="after the run ended"):
            call()


def test_unknown_keywords_warn_and_wrong_types_name_the_parameter(tmp_path: Path) -> None:
    with pytest.warns(prov4ml.Yprov4mlWarning, match=r"start_run\(\) ignores unknown arguments \['colour'\]"):
        _start(tmp_path, colour="red")
    with pytest.warns(prov4ml.Yprov4mlWarning, match="log_param"):
        prov4ml.log_param("p", 1, future_option=True)
    with pytest.raises(TypeError, match=r"log_model\(log_model_info=\.\.\.\) must be bool .*yProv4ML"):
        prov4ml.log_model("m", str(tmp_path), log_model_info="yes")
    with pytest.raises(TypeError, match=r"end_run\(create_card=\.\.\.\) must be bool .*3\.2\.x.*str 'yes'"):
        prov4ml.end_run(create_card="yes")
    prov4ml.end_run()
    with pytest.raises(
        TypeError, match=r"start_run\(save_after_n_logs=\.\.\.\) must be int .*2\.0\.x and 3\.2\.x"
    ):
        _start(tmp_path, save_after_n_logs="100")
    with pytest.raises(TypeError, match=r"use_run_id"):
        _start(tmp_path, use_run_id=1.5)


def test_end_run_without_a_run_is_a_no_op() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert prov4ml.end_run() is None
        assert prov4ml.end_run(True, True, True, True) is None


def test_singleton_runs_are_numbered_like_upstream(tmp_path: Path) -> None:
    names = []
    for _ in range(3):
        _start(tmp_path)
        names.append(prov4ml.end_run().name)
    assert names == ["values_0", "values_1", "values_2"]
    (tmp_path / "values_17").mkdir()  # a later run continues after the highest N
    _start(tmp_path)
    assert prov4ml.end_run().name == "values_18"
    _start(tmp_path, use_run_id=5)
    assert prov4ml.end_run().name == "values_5"
    with pytest.raises(prov4ml.ConfigError, match="already exists"):
        _start(tmp_path, use_run_id=5)


def test_artifacts_keep_their_extension(tmp_path: Path) -> None:
    (tmp_path / "model.ckpt").write_bytes(b"w")
    _start(tmp_path / "prov")
    record = prov4ml.log_artifact("weights", str(tmp_path / "model.ckpt"))
    named = prov4ml.log_artifact("named.bin", str(tmp_path / "model.ckpt"))
    prov4ml.end_run()
    assert record["path"].endswith("/weights.ckpt") and named["path"].endswith("/named.bin")


def test_contexts_enum_and_upstream_strings_are_one_context(tmp_path: Path) -> None:
    _start(tmp_path)
    for context in (prov4ml.Context.TRAINING, prov4ml.Contexts.TRAINING, "Training", "TRAINING", "training"):
        prov4ml.log_metric("loss", 1.0, context)
    prov4ml.log_metric("loss", 1.0, "MyPhase")
    run = prov4ml.load_run(prov4ml.end_run())
    assert sorted(c for _, c, _ in run.series_keys()) == ["MyPhase", "training"]
    assert len(run.series("loss", "training").value) == 5


def test_ranks_with_different_experiment_names_warn_and_report(tmp_path: Path) -> None:
    pytest.importorskip("mpi4py")
    result = run_script("mismatched_experiments.py", tmp_path, ranks=2)
    assert "rank 1 warned: ['rank 1 started experiment 'exp_rank1'" in result.stdout.replace('"', "'")
    run_dir = only_run_dir(tmp_path / "prov")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [r["rank"] for r in summary["ranks"] if r["status"] == "finished"] == [0, 1]
    assert any("exp_rank1" in p["reason"] for p in summary["problems"]), summary["problems"]


def test_end_run_result_is_the_run_dir_and_unpacks_like_2x(tmp_path: Path) -> None:
    _start(tmp_path)
    result = prov4ml.end_run()
    assert isinstance(result, Path) and (result / "summary.json").is_file()
    document, dot, svg, crate = result  # yProv4ML 2.0.x: (prov_json, dot, svg, crate)
    assert document.name == f"prov_values_{result.name.split('_')[-1]}.json" and document.is_file()
    assert (dot.name, svg.name, crate.name) == ("graph.dot", "graph.svg", "ro-crate-metadata.json")
    assert type(result / "x") is type(Path())  # derived paths are plain paths
