"""Positional calls in each upstream order land in the parameter of the same meaning.

Where 2.0.x, 3.2.x and prov4ml 1.x put different parameters at one position, the call is
recognised by the types of its arguments; these tests check the effect on what is recorded.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import yprov4ml_hpc as prov4ml

pytest.importorskip("torch")
import torch


def _start(tmp_path: Path, *args: object, **kwargs: object) -> prov4ml.Run:
    kwargs.setdefault("flush_interval_s", 0)
    kwargs.setdefault("install_signal_handlers", False)
    kwargs.setdefault("system_metrics_interval_s", 0)
    return prov4ml.start_run("layouts", *args, **kwargs)


def _artifacts(run_dir: Path) -> dict[str, dict[str, object]]:
    return {a["name"]: a for a in prov4ml.load_run(run_dir).artifacts(0)}


def test_start_run_2x_positional_order(tmp_path: Path) -> None:
    """2.0.x: (..., rank, disable_codecarbon, metrics_file_type, csv_separator, use_compressor)."""
    run = _start(tmp_path, "ns", str(tmp_path), True, 10, None, True, "csv", ";", None)
    prov4ml.log_metric("loss", 0.5, step=3)
    run_dir = prov4ml.end_run()
    assert run_dir is not None and run.user_namespace == "ns"
    rows = (run_dir / "metrics_GR0" / "loss_default_None_GR0.csv").read_text().splitlines()
    assert rows[0] == "epoch;value;timestep" and rows[1].startswith("3;0.5;")


def test_start_run_3x_positional_order(tmp_path: Path) -> None:
    """3.2.x: (..., rank, metrics_file_type, csv_separator, use_compressor, use_run_id)."""
    _start(tmp_path, "ns", str(tmp_path), True, 10, None, "csv", "\t", False, 42)
    prov4ml.log_metric("loss", 0.25, step=1)
    run_dir = prov4ml.end_run(False, False, False, False)
    assert run_dir == tmp_path / "layouts_42"
    assert (
        (run_dir / "metrics_GR0" / "loss_default_None_GR0.csv")
        .read_text()
        .startswith("epoch\tvalue\ttimestep")
    )


def test_log_artifact_orders(tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"x")
    _start(tmp_path, provenance_save_dir=str(tmp_path / "prov"))
    # 2.0.x: name, path, context, step, log_copy_in_prov_directory, is_model, is_input
    prov4ml.log_artifact("v2", str(tmp_path / "a.bin"), "Training", 5, False, True, True)
    # 3.2.x: name, path, context, source, step, copy, copy_subdirectory, is_model, is_input, other_attrs
    prov4ml.log_artifact(
        "v3", str(tmp_path / "a.bin"), "Training", "src", 6, True, "sub", False, True, {"a": 1}
    )
    # 1.x: path, context (an enum member, or a string)
    prov4ml.log_artifact(str(tmp_path / "a.bin"), prov4ml.Context.VALIDATION)
    (tmp_path / "b.txt").write_text("b")
    prov4ml.log_artifact(str(tmp_path / "b.txt"), "Testing")
    arts = _artifacts(prov4ml.end_run())
    v2, v3, v1 = arts["v2"], arts["v3"], arts["a.bin"]
    assert (v2["step"], v2["copied"], v2["kind"], v2["role"], v2["context"]) == (
        5,
        False,
        "model",
        "input",
        "training",
    )
    assert (v3["step"], v3["copied"], v3["kind"], v3["role"], v3["source"]) == (
        6,
        True,
        "artifact",
        "input",
        "src",
    )
    assert v3["path"] == "artifacts/rank_000000/sub/v3.bin" and v3["attributes"] == {"a": 1}
    assert v1["context"] == "validation" and arts["b.txt"]["context"] == "testing"


def test_model_and_dataset_orders(tmp_path: Path) -> None:
    model = torch.nn.Linear(3, 2)
    data = torch.utils.data.TensorDataset(torch.zeros(5, 3))
    _start(tmp_path, provenance_save_dir=str(tmp_path / "prov"))
    prov4ml.log_model("m3", model, "Training", "torch", True, False, True, True)  # 3.2.x
    prov4ml.log_model("m2", model, prov4ml.Context.MODELS, True, False, True)  # 2.0.x: flags 4th
    prov4ml.log_model(model, "m1")  # prov4ml 1.x: model first
    prov4ml.save_model_version("s3", model, "Training", "torch", 4, False, True)  # 3.2.x
    prov4ml.save_model_version("s2", model, "Training", 7, False, True)  # 2.0.x: step 4th
    prov4ml.save_model_version(model, "s1", "Training", 9)  # 1.x: model first
    prov4ml.log_dataset("d3", data, "Training", "synthetic", False)  # 3.2.x
    prov4ml.log_dataset("d2", data, "Training", True)  # 2.0.x: log_dataset_info 4th
    prov4ml.log_dataset(data, "d1")  # 1.x: dataset first
    arts = _artifacts(prov4ml.end_run())
    assert arts["models/m3.pt"]["role"] == "input" and arts["models/m2.pt"]["role"] == "input"
    assert arts["models/m1.pt"]["kind"] == "model"
    assert (arts["models/s3.pt"]["step"], arts["models/s3.pt"]["role"]) == (4, "input")
    assert (arts["models/s2.pt"]["step"], arts["models/s2.pt"]["role"]) == (7, "input")
    assert arts["models/s1_0.pt"]["step"] == 9  # incremental by default
    assert "length" not in arts["d3"] and arts["d2"].get("length") == 5 and arts["d1"].get("length") == 5


def test_log_source_code_both_orders(tmp_path: Path) -> None:
    _start(tmp_path, provenance_save_dir=str(tmp_path / "prov"))
    assert prov4ml.log_source_code(True)  # 3.2.x: use_git
    assert prov4ml.log_source_code(str(Path(__file__).parent))  # 2.0.x: path
    prov4ml.end_run()


def test_log_param_3x_order(tmp_path: Path) -> None:
    _start(tmp_path, provenance_save_dir=str(tmp_path / "prov"))
    prov4ml.log_param("p", 3, "Training", "cli", True)
    run = prov4ml.load_run(prov4ml.end_run())
    assert run.params(0)["p"] == 3
