"""The drop-in API on one rank: everything logged reads back exactly, bad input is refused clearly."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest

import yprov4ml_hpc as prov4ml
from yprov4ml_hpc import ArtifactNotFoundError, Context, RunStateError


def _start(tmp_path: Path, **kwargs: object) -> prov4ml.Run:
    kwargs.setdefault("flush_interval_s", 0)
    return prov4ml.start_run("exp", provenance_save_dir=tmp_path, **kwargs)  # type: ignore[arg-type]


def test_series_read_back_exactly_across_many_flushes(tmp_path: Path) -> None:
    _start(tmp_path, buffer_size=64)
    rng = np.random.default_rng(7)
    values = rng.normal(size=1000)
    times = 1_700_000_000_000_000_000 + np.arange(1000, dtype=np.int64) * 3
    for i, v in enumerate(values):
        prov4ml.log_metric(
            "train/loss", float(v), context=Context.TRAINING, step=2 * i, timestamp=int(times[i])
        )
    run_dir = prov4ml.end_run()
    assert isinstance(run_dir, Path) and run_dir.is_dir()
    series = prov4ml.load_run(run_dir).series("train/loss", "training", 0)
    np.testing.assert_array_equal(series.value, values)
    np.testing.assert_array_equal(series.step, 2 * np.arange(1000))
    np.testing.assert_array_equal(series.time_ns, times)


def test_step_auto_increments_per_series_and_follows_explicit_steps(tmp_path: Path) -> None:
    _start(tmp_path)
    for _ in range(3):
        prov4ml.log_metric("a", 1.0)
    prov4ml.log_metric("a", 1.0, step=10)
    prov4ml.log_metric("a", 1.0)
    prov4ml.log_metric("b", 2.0)  # its own counter
    data = prov4ml.load_run(prov4ml.end_run())
    assert data.series("a").step.tolist() == [0, 1, 2, 10, 11]
    assert data.series("b").step.tolist() == [0]


def test_context_enum_and_string_are_the_same_series(tmp_path: Path) -> None:
    _start(tmp_path)
    prov4ml.log_metric("acc", 0.1, context=Context.VALIDATION)
    prov4ml.log_metric("acc", 0.2, context="validation")
    prov4ml.log_metric("acc", 0.3, context="my phase/with slash")
    data = prov4ml.load_run(prov4ml.end_run())
    assert data.series("acc", "validation").value.tolist() == [0.1, 0.2]
    assert data.series("acc", "my phase/with slash").value.tolist() == [0.3]


def test_odd_but_valid_values(tmp_path: Path) -> None:
    _start(tmp_path)
    for v in (
        float("nan"),
        math.inf,
        -math.inf,
        3,
        True,
        np.float32(0.5),
        np.int64(7),
        np.array(2.5),
        10**400,
    ):
        prov4ml.log_metric("x", v)  # type: ignore[arg-type]
    prov4ml.log_metric("y", 1.0, step=np.int64(4))  # type: ignore[arg-type]
    prov4ml.log_metric("y", 1.0, step=5.0)  # type: ignore[arg-type]
    data = prov4ml.load_run(prov4ml.end_run())
    got = data.series("x").value
    assert math.isnan(got[0])
    assert got[1:].tolist() == [math.inf, -math.inf, 3.0, 1.0, 0.5, 7.0, 2.5, math.inf]
    assert data.series("y").step.tolist() == [4, 5]


def test_unicode_and_slashes_in_names_read_back(tmp_path: Path) -> None:
    _start(tmp_path)
    names = ["loss/train", "a b c", "ünï/cødé ∑", "..", "%2F", ".hidden"]
    for n in names:
        prov4ml.log_metric(n, 1.0, context="ctx/x")
    data = prov4ml.load_run(prov4ml.end_run())
    assert sorted(k[0] for k in data.series_keys() if k[1] == "ctx/x") == sorted(names)


@pytest.mark.parametrize(
    ("key", "value", "error", "needle"),
    [
        ("loss", "0.5", TypeError, "'loss'.*str"),
        ("loss", None, TypeError, "'loss'.*NoneType"),
        ("loss", [1.0, 2.0], TypeError, "'loss'.*list"),
        ("loss", np.array([1.0, 2.0]), TypeError, "'loss'.*single number"),
        ("", 1.0, ValueError, "empty"),
        (7, 1.0, TypeError, "must be a str.*int"),
        ("bad\x00name", 1.0, ValueError, "NUL"),
    ],
)
def test_bad_metric_input_is_refused_and_loses_nothing(
    tmp_path: Path, key: object, value: object, error: type, needle: str
) -> None:
    _start(tmp_path)
    prov4ml.log_metric("loss", 1.0)
    with pytest.raises(error, match=needle):
        prov4ml.log_metric(key, value)  # type: ignore[arg-type]
    prov4ml.log_metric("loss", 2.0)
    data = prov4ml.load_run(prov4ml.end_run())
    assert data.series("loss").value.tolist() == [1.0, 2.0]
    assert data.series("loss").step.tolist() == [0, 1]


def test_bad_step_and_context(tmp_path: Path) -> None:
    _start(tmp_path)
    with pytest.raises(TypeError, match="step"):
        prov4ml.log_metric("a", 1.0, step="3")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="int64"):
        prov4ml.log_metric("a", 1.0, step=2**70)
    with pytest.raises(TypeError, match="context"):
        prov4ml.log_metric("a", 1.0, context=["x"])
    with pytest.raises(ValueError, match="NUL"):
        prov4ml.log_metric("a", 1.0, context="x\x00")
    prov4ml.log_metric("a", 1.0)
    assert prov4ml.load_run(prov4ml.end_run()).series("a").step.tolist() == [0]


def test_calls_outside_a_run_raise_run_state_error(tmp_path: Path) -> None:
    with pytest.raises(RunStateError, match="start_run"):
        prov4ml.log_metric("a", 1.0)
    assert prov4ml.end_run() is None  # yProv4ML: end_run() without a run does nothing
    run = _start(tmp_path)
    with pytest.raises(RunStateError, match="already active"):
        _start(tmp_path)
    run.log_metric("a", 1.0)
    prov4ml.end_run()
    with pytest.raises(RunStateError):
        prov4ml.log_param("a", 1)
    with pytest.raises(RunStateError, match="after the run ended"):
        run.log_metric("new-series", 1.0)
    with pytest.raises(RunStateError, match="after the run ended"):
        run.log_metric("a", 2.0)  # a series the run already had: refused too, not dropped


def test_params_keep_their_types(tmp_path: Path) -> None:
    _start(tmp_path)
    params = {
        "int": 3,
        "float": 0.1,
        "bool": True,
        "str": "adam",
        "none": None,
        "list": [1, "a", None],
        "dict": {"a": {"b": [1.5]}},
        "huge": 10**30,
        "nan": float("nan"),
    }
    prov4ml.log_params(params)
    prov4ml.log_param("tuple", (1, 2))
    prov4ml.log_param("np", np.float32(0.25))
    prov4ml.log_param("int", 4)  # the last value wins
    got = prov4ml.load_run(prov4ml.end_run()).params()
    for key in ("float", "bool", "str", "none", "list", "dict", "huge"):
        assert got[key] == params[key] and type(got[key]) is type(params[key]), key
    assert got["int"] == 4 and math.isnan(got["nan"])
    assert got["tuple"] == [1, 2] and got["np"] == 0.25


def test_artifacts_are_copied_hashed_and_kept_inside_the_run_dir(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    weights = src / "weights.bin"
    weights.write_bytes(b"\x00\x01" * 1000)
    run = _start(tmp_path / "prov")
    prov4ml.log_artifact("model/weights.bin", weights)
    prov4ml.log_artifact("../../../escape.bin", weights)
    prov4ml.log_artifact("/etc/absolute.bin", weights, is_input=True)
    prov4ml.log_artifact(str(weights))  # yProv4ML 2.x form: just a path
    with pytest.raises(ArtifactNotFoundError, match="does not exist"):
        prov4ml.log_artifact("missing", tmp_path / "nope.bin")
    run_dir = prov4ml.end_run()
    arts = prov4ml.load_run(run_dir).artifacts()
    assert len(arts) == 4
    for art in arts:
        stored = (run_dir / art["path"]).resolve()
        assert stored.is_relative_to(run.artifacts_dir.resolve())
        assert stored.read_bytes() == weights.read_bytes()
        assert art["size"] == 2000 and len(art["sha256"]) == 64
    assert {a["role"] for a in arts} == {"input", "output"}
    assert not (tmp_path / "escape.bin").exists()
    assert sorted(p.name for p in (tmp_path).iterdir()) == ["prov", "src"]


def test_models_datasets_and_source_code(tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt.pt"
    ckpt.write_bytes(b"weights")
    _start(tmp_path / "prov")
    prov4ml.log_model("net", ckpt)
    prov4ml.log_dataset("train", list(range(50)))
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text("print('hi')\n")
    (code / "site-packages").mkdir()
    (code / "site-packages" / "lib.py").write_text("x = 1\n")
    info = prov4ml.log_source_code(code)
    prov4ml.log_execution_command("python train.py")
    prov4ml.log_execution_start_time()
    prov4ml.log_current_execution_time("t", step=1)
    data = prov4ml.load_run(prov4ml.end_run())
    kinds = {a["kind"]: a for a in data.artifacts()}
    assert kinds["model"]["size"] == 7
    assert kinds["dataset"]["length"] == 50
    assert list(info["files"]) == ["train.py"]
    params = data.params()
    assert params["execution_command"] == "python train.py"
    assert params["source_code"]["files"]["train.py"] == info["files"]["train.py"]
    assert abs(data.series("t").value[0] - time.time()) < 60


def test_timer_flushes_while_the_loop_is_quiet(tmp_path: Path) -> None:
    run = _start(tmp_path, flush_interval_s=0.2)
    for i in range(10):
        prov4ml.log_metric("x", float(i))
    deadline = time.time() + 10
    while time.time() < deadline:
        data = prov4ml.load_run(run.run_dir)  # read while the run is still active
        if ("x", "default", 0) in data.series_keys() and len(data.series("x")) == 10:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the timer never flushed the quiet series")
    assert data.ranks[0].status == "running"
    prov4ml.end_run()


def test_context_manager_marks_failure(tmp_path: Path) -> None:
    with pytest.raises(ZeroDivisionError), _start(tmp_path) as run:
        prov4ml.log_metric("x", 1.0)
        1 / 0  # noqa: B018
    assert prov4ml.active_run() is None
    data = prov4ml.load_run(run.run_dir)
    assert data.ranks[0].status == "failed"
    assert data.series("x").value.tolist() == [1.0]
    with _start(tmp_path) as ok:
        pass
    assert prov4ml.load_run(ok.run_dir).ranks[0].status == "finished"


def test_yprov4ml_arguments_are_accepted_and_ignored(tmp_path: Path) -> None:
    run = prov4ml.start_run(
        "exp",
        prov_user_namespace="www.example.org",
        provenance_save_dir=tmp_path,
        save_after_n_logs=100,
        collect_all_processes=True,
        metrics_file_type="csv",
    )
    prov4ml.log_metric("x", 1.0, context=Context.TRAINING, source="ignored")
    assert prov4ml.get_run_dir() == run.run_dir
    assert prov4ml.end_run(create_graph=False, create_svg=False) == run.run_dir
    attrs = prov4ml.load_run(run.run_dir).ranks[0].attrs
    assert "save_after_n_logs" in attrs["ignored_arguments"]
    with pytest.warns(UserWarning, match="buffer_sise"):
        prov4ml.start_run("exp", provenance_save_dir=tmp_path, buffer_sise=3)
    prov4ml.end_run()


def test_ring_memory_has_a_budget(tmp_path: Path) -> None:
    run = _start(tmp_path, buffer_size=4096, max_buffer_mb=1)
    for i in range(200):
        prov4ml.log_metric(f"m{i}", 1.0)
    assert run._ring_bytes < 2 * (1 << 20)  # 200 full rings would be 19.7 MB
    data = prov4ml.load_run(prov4ml.end_run())
    assert len([k for k in data.series_keys() if k[1] == "default"]) == 200


def test_log_metrics_shares_step_and_timestamp_and_keeps_earlier_entries(tmp_path: Path) -> None:
    _start(tmp_path, buffer_size=4)
    for epoch in range(10):  # more points than the ring holds: the full-ring flush path runs too
        prov4ml.log_metrics({"loss": epoch * 0.1, "acc": np.float32(0.5)}, context="training", step=epoch)
    prov4ml.log_metrics({"auto": 1.0})
    prov4ml.log_metrics({"auto": 2.0})
    with pytest.raises(TypeError, match=r"'bad'.*str"):
        prov4ml.log_metrics({"good": 1.0, "bad": "x"})
    with pytest.raises(TypeError, match="mapping"):
        prov4ml.log_metrics([("a", 1.0)])  # type: ignore[arg-type]
    data = prov4ml.load_run(prov4ml.end_run())
    loss, acc = data.series("loss", "training"), data.series("acc", "training")
    assert loss.step.tolist() == acc.step.tolist() == list(range(10))
    np.testing.assert_array_equal(loss.value, np.arange(10) * 0.1)
    np.testing.assert_array_equal(loss.time_ns, acc.time_ns)
    assert data.series("auto").step.tolist() == [0, 1]
    assert data.series("good").value.tolist() == [1.0]


def test_end_run_prov_detail_is_recorded_for_a_later_merge(tmp_path: Path) -> None:
    _start(tmp_path, prov_detail="auto")
    prov4ml.log_metric("x", 1.0)
    run_dir = prov4ml.end_run(prov_detail="rank")
    assert prov4ml.load_run(run_dir).ranks[0].attrs["prov_detail"] == "rank"
