"""yProv4ML-style scripts, changed only in their import lines, run to the end as a user runs them.

Each runs as a subprocess (single process, and some under ``mpiexec -n 2``), must exit 0 and
leave a PROV document that ``prov.read`` loads; then what the script logged is looked up in
the summary, the rank files (``load_run``) and the extra outputs.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import check_document, only_run_dir, ranks_finished, run_script

import yprov4ml_hpc as prov4ml

pytest.importorskip("torch")


def _metric(summary: dict[str, Any], name: str, context: str) -> dict[str, Any]:
    found = [m for m in summary["metrics"] if m["name"] == name and m["context"] == context]
    assert len(found) == 1, (name, context, sorted({(m["name"], m["context"]) for m in summary["metrics"]}))
    return found[0]


def _artifact(run: prov4ml.RunData, name: str, rank: int = 0) -> dict[str, Any]:
    found = [a for a in run.artifacts(rank) if a["name"] == name]
    assert len(found) == 1, (name, [a["name"] for a in run.artifacts(rank)])
    return found[0]


@pytest.fixture(scope="module")
def v3_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = tmp_path_factory.mktemp("v3")
    result = run_script("v3_mnist.py", cwd, "7")
    assert "CrossEntropyLoss" in result.stdout or "MSE" in result.stdout  # the getters printed
    return cwd / "prov" / "mnist_v3_7"


def test_v2_script_single_process(tmp_path: Path) -> None:
    run_script("v2_mnist.py", tmp_path)
    run_dir = only_run_dir(tmp_path / "prov")
    assert run_dir.name == "mnist_v2_0"  # upstream's <experiment>_<N>
    summary = check_document(run_dir)
    assert ranks_finished(summary) == [0]
    assert _metric(summary, "MSE_train", "training")["count"] == 2 * 3  # 2 epochs x 3 batches
    assert _metric(summary, "MSE_val", "validation")["count"] == 2
    assert _metric(summary, "flops_pb", "training")["min"] > 0
    flops_pe = _metric(summary, "flops_pe", "training")
    assert flops_pe["max"] == pytest.approx(2 * 48 * 2 * 784 * 10)  # running total: 2 epochs x 48 samples
    run = prov4ml.load_run(run_dir)
    params = run.params(0)
    assert params["lr"] == 0.001 and params["optimizer"] == "Adam"
    assert params["TRAINING_LOD2.is_subcontext_of"] == "training"
    assert params["execution_start_time"] <= params["execution_end_time"]
    weights = _artifact(run, "final_weights")  # 2.0.x positional: step 4th, flags after
    assert (weights["step"], weights["kind"], weights["role"]) == (2, "model", "output")
    assert weights["path"].endswith("final_weights.pt") and weights["copied"] is True
    for epoch in range(2):
        version = _artifact(run, f"models/mnist_model_version_{epoch}.pt")
        assert version["step"] == epoch and version["kind"] == "model"
    assert (run_dir / "artifacts/rank_000000/models/mnist_model_final_layers_description.json").is_file()
    assert (run_dir / "metrics_GR0" / "MSE_train_training_None_GR0.csv").is_file()  # MetricsType.CSV
    dataset = _artifact(run, "train_dataset")
    assert dataset["kind"] == "dataset" and dataset["context"] == "datasets"


def test_end_run_true_true_false_under_mpiexec_keeps_both_ranks(tmp_path: Path) -> None:
    """Regression: `end_run(True, True, False)` once set a 0 s finalize timeout and lost rank 1."""
    run_script("v2_mnist.py", tmp_path, ranks=2)
    run_dir = only_run_dir(tmp_path / "prov")
    summary = check_document(run_dir)
    assert summary["world_size"] == 2
    assert ranks_finished(summary) == [0, 1]
    assert _metric(summary, "MSE_train", "training")["count"] == 2 * 2 * 3
    assert {m["min_rank"] for m in summary["metrics"] if m["name"] == "MSE_train"} <= {0, 1}
    for rank in (0, 1):
        assert (run_dir / f"metrics_GR{rank}" / f"MSE_train_training_None_GR{rank}.csv").is_file()
    assert not summary["problems"]


def test_log_provenance_documents_ends_the_run(tmp_path: Path) -> None:
    run_script("v2_mnist.py", tmp_path, "--log-provenance-documents")
    assert ranks_finished(check_document(only_run_dir(tmp_path / "prov"))) == [0]


def test_v3_script_single_process(v3_run: Path) -> None:
    summary = check_document(v3_run)
    assert ranks_finished(summary) == [0]
    run = prov4ml.load_run(v3_run)
    loss = run.series("CrossEntropyLoss", "training", 0)  # ProvenanceTrackedFunction
    assert loss.step.tolist() == list(range(8))
    assert run.series("CrossEntropyLoss", "validation", 0).step.tolist() == list(range(8))
    weight_mean = run.series("mnist_model/1/weight_mean", "training", 0)  # WeightDistributionTrackedModel
    assert weight_mean.step.tolist() == [0, 1]
    p25, p75 = (run.series(f"mnist_model/1/weight_{s}", "training", 0).value for s in ("p25", "p75"))
    assert np.all(p25 <= p75)
    acts = run.series("activations/model.1/output_mean", "training", 0)  # ProvenanceTrackedModel
    assert len(acts.step) >= 8
    weights = _artifact(run, "weights")
    assert weights["path"] == "artifacts/rank_000000/final/weights.pt"  # log_copy_subdirectory
    assert weights["source"] == "torch" and weights["attributes"] == {"k": 1} and weights["step"] == 2
    params = run.params(0)
    assert params["dataset transformation"] == {"normalize": True, "mean": [0.5]}
    assert params[
        "trainingbutdifferent.is_subcontext_of".replace("trainingbutdifferent", "TrainingButDifferent")
    ] == ("training")
    version = _artifact(run, "models/mnist_model_version_1.pt")
    assert version["step"] == 1


def test_v3_csv_files_equal_the_hdf5_series(v3_run: Path) -> None:
    run = prov4ml.load_run(v3_run)
    keys = run.series_keys()
    assert len(keys) > 10
    for metric, context, rank in keys:
        series = run.series(metric, context, rank)
        path = prov4ml.getters.list_metric_paths(str(v3_run), context=context, file_type="csv")
        from yprov4ml_hpc._compat._outputs import csv_path

        file = csv_path(v3_run, metric, context, rank)
        assert str(file) in path.values()
        with file.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert [int(r["epoch"]) for r in rows] == series.step.tolist()
        assert [float(r["value"]) for r in rows] == series.value.tolist()  # repr: exact round trip
        assert [int(r["timestep"]) for r in rows] == (series.time_ns // 1_000_000).tolist()


def test_v3_ro_crate_validates_and_lists_the_run(v3_run: Path) -> None:
    from rocrate.rocrate import ROCrate

    crate = ROCrate(str(v3_run))  # parses and checks the metadata file
    ids = {str(e.id) for e in crate.data_entities}
    assert "prov_mnist_v3_7.json" in ids and "summary.json" in ids and "card.json" in ids
    assert "ranks/rank_000000.h5" in ids
    assert "artifacts/rank_000000/final/weights.pt" in ids
    assert any(i.startswith("metrics_GR0/") for i in ids)
    metadata = json.loads((v3_run / "ro-crate-metadata.json").read_text())
    root = next(e for e in metadata["@graph"] if e["@id"] == "./")
    assert root["name"] == "mnist_v3_7" and "datePublished" in root


def test_v3_card_is_made_from_the_summary(v3_run: Path) -> None:
    card = json.loads((v3_run / "card.json").read_text())
    summary = json.loads((v3_run / "summary.json").read_text())
    assert card["run_id"] == "7" and card["experiment"] == "mnist_v3"
    assert card["world_size"] == summary["world_size"] == 1
    assert {(r["name"], r["context"]) for r in card["results"]} == {
        (m["name"], m["context"]) for m in summary["metrics"]
    }
    assert any(m["name"] == "models/mnist_model_final.pt" for m in card["models"])
    assert card["parameters"]["dataset transformation"]["mean"] == [0.5]


def test_v3_getters_read_our_documents(v3_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("pandas")
    monkeypatch.chdir(v3_run.parent.parent)  # where the script ran: a loaded dict is found from here
    from yprov4ml_hpc.utils import getters, prov_getters

    doc = sorted(v3_run.glob("prov_*.json"))[0]
    df = getters.list_metrics(str(doc), context="Training")
    assert {"label", "context", "source", "csv_path"} <= set(df.columns)
    assert set(df["context"]) == {"training"}
    metric = getters.get_metric(str(doc), name="MSE", context="Training")
    series = prov4ml.load_run(v3_run).series("MSE", "training", 0)
    assert metric["value"].tolist() == series.value.tolist()
    # upstream's ml_example notebook: the mean per epoch (a text column would make this raise)
    per_epoch = metric.groupby("epoch").mean()["value"]
    assert per_epoch.tolist() == pytest.approx(
        [series.value[series.step == epoch].mean() for epoch in sorted(set(series.step.tolist()))]
    )
    assert getters.get_parameter(str(doc), "weights", "yprov4ml:role") == "output"
    assert getters.list_entities(str(doc), "provml:Model")
    assert getters.list_runs_in_proj(v3_run.parent) == [v3_run]
    assert getters.list_provjson_in_proj(v3_run.parent) == [doc]
    with doc.open() as handle:
        data = json.load(handle)
    old = prov_getters.get_metric(data, "MSE_training")  # 2.x: a loaded dict, <name>_<context>
    assert old["value"].tolist() == series.value.tolist()
    assert prov_getters.get_param(data, "prov-ml:dataset transformation") is not None
    assert prov_getters.get_experiemnt_id(data) == "mnist_v3_7"


@pytest.mark.parametrize("ranks", [2])
def test_v3_script_under_mpiexec(tmp_path: Path, ranks: int) -> None:
    run_script("v3_mnist.py", tmp_path, ranks=ranks)
    run_dir = only_run_dir(tmp_path / "prov")
    assert run_dir.name == "mnist_v3_0"
    summary = check_document(run_dir)
    assert ranks_finished(summary) == list(range(ranks))
    assert _metric(summary, "CrossEntropyLoss", "training")["count"] == ranks * 8
    run = prov4ml.load_run(run_dir)
    for rank in range(ranks):
        assert run.series("mnist_model/1/weight_mean", "training", rank).step.tolist() == [0, 1]
        assert _artifact(run, "weights", rank)["path"] == f"artifacts/rank_{rank:06d}/final/weights.pt"


def test_current_examples_style(tmp_path: Path) -> None:
    result = run_script("current_examples.py", tmp_path)
    assert "metrics_file_type='nc'" in result.stderr  # said once, clearly
    run_dir = only_run_dir(tmp_path / "prov")
    summary = check_document(run_dir)
    contexts = {m["context"] for m in summary["metrics"] if m["name"].startswith("MSE_train")}
    assert contexts == {"training"}  # Contexts.TRAINING, "Training" and "TRAINING": one context
    run = prov4ml.load_run(run_dir)
    series = run.series("MSE_train", "training", 0)
    assert len(series.value) == 2 * 2 * 4
    params = run.params(0)
    assert params["MSE_train_final"] == pytest.approx(min(10.0, float(series.value.min())))
    assert params["MSE_train_final_fold"] == "MIN"
    total = run.series("MSE_train_sum", "training", 0).value.sum()
    assert params["MSE_train_sum_final"] == pytest.approx(float(total))
    assert params["labels_seen"] and len(params["labels_seen"]) == 4
    assert _artifact(run, "predictions")["role"] == "output"
    assert _artifact(run, "train_dataset")["kind"] == "dataset"  # 1.x: dataset first
    assert _artifact(run, "models/mnist_model_final.pt")["kind"] == "model"  # 1.x: model first
    assert _artifact(run, "models/mnist_model_version_1.pt")["context"] == "models"
    assert len(run.series("MNISTModel/model.0/input_mean", "default", 0).step) == 8


def test_lightning_provmllogger(tmp_path: Path) -> None:
    pytest.importorskip("lightning")
    run_script("lightning_logger.py", tmp_path)
    run_dir = only_run_dir(tmp_path / "prov")
    summary = check_document(run_dir)
    assert ranks_finished(summary) == [0]
    assert _metric(summary, "MSE_training", "training")["count"] >= 2
    assert _metric(summary, "MSE_validation", "validation")["count"] >= 1
    run = prov4ml.load_run(run_dir)
    assert _artifact(run, "models/model_version_1_0.pt")["step"] == 1
    assert (run_dir / "ro-crate-metadata.json").is_file()


@pytest.mark.parametrize("ranks", [1, 2])
def test_itwinai_logger(tmp_path: Path, ranks: int) -> None:
    run_script("itwinai_logger.py", tmp_path, ranks=ranks)
    run_dir = only_run_dir(tmp_path / "prov")
    summary = check_document(run_dir)
    assert ranks_finished(summary) == list(range(ranks))
    assert _metric(summary, "loss", "training")["count"] == ranks * 4
    assert _metric(summary, "flops_pb", "training")["min"] > 0
    run = prov4ml.load_run(run_dir)
    for rank in range(ranks):
        assert run.params(rank)["lr"] == 0.01
        assert _artifact(run, "train_loader", rank)["kind"] == "dataset"
        assert _artifact(run, "models/best_model.pt", rank)["kind"] == "model"


def test_every_getter_positionally(v3_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each upstream getter, every positional parameter filled, on a real run."""
    pytest.importorskip("pandas")
    from yprov4ml_hpc.utils import getters, prov_getters

    monkeypatch.chdir(v3_run.parent.parent)
    doc = str(sorted(v3_run.glob("prov_*.json"))[0])
    raw = getters.list_parameters(doc, "weights", False)
    assert raw["yprov4ml:role"] == "output"
    assert getters.get_parameter(doc, "weights", "role", False) == "output"
    assert getters.list_parameters(doc)["yprov4ml:experiment"] == "mnist_v3"
    assert len(getters.list_metrics(doc, "Training", None)) > 0
    paths = getters.list_metric_paths(doc, "Validation", None, "csv")
    assert paths and all(p.endswith(".csv") for p in paths.values())
    validation = getters.get_metric(doc, "MSE", "Validation", None)
    assert "context" not in validation.columns  # one context asked for: no text column
    both = getters.get_metric(doc, "MSE", None, None)
    assert sorted(set(both["context"])) == ["training", "validation"]
    assert len(both) == len(validation) + len(getters.get_metric(doc, "MSE", "Training", None))
    assert getters.get_metric(doc, "no-such-metric", None, None) is None
    with open(doc) as handle:
        data = json.load(handle)
    ids = prov_getters.get_metrics(data, "MSE")
    assert ids and all("yprov4ml:rank" not in data["entity"][i] for i in ids)
    frame = prov_getters.get_metric(data, ids[0], True, True, "epoch", 0, 4)
    assert list(frame.columns) == ["epoch", "value", "time"] and len(frame) == 4
    assert frame["time"].iloc[0] == 0.0  # time_incremental
    values = prov_getters.get_metric(data, "MSE_training")["value"]
    assert prov_getters.get_avg_metric(data, "MSE_training") == pytest.approx(values.mean())
    assert prov_getters.get_sum_metric(data, "MSE_training") == pytest.approx(values.sum())
    assert prov_getters.get_metric_time(data, "MSE_training", True) >= 0
    assert prov_getters.get_params(data, "dataset") == [
        prov_getters.get_param(data, "dataset transformation")
    ]
    assert prov_getters.get_execution_command(data) is None  # the script did not log one
    assert prov_getters.get_source_code(data) is not None
    assert "train_dataset" in prov_getters.get_inputs(data)
    assert "weights" in prov_getters.get_outputs(data)


def test_loggers_constructed_positionally(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    logger = prov4ml.ProvMLItwinAILogger(
        "www.example.org", "itw", str(tmp_path / "prov"), 100, False, False, 2, -1
    )
    assert (logger.log_freq, logger.log_on_workers, logger.name) == (2, -1, "itw")
    with logger.start_logging(0):
        logger.log(1.0, "loss", "metric", 0, 0, "Training")
        logger.log(2.0, "loss", "metric", 1, 1, "Training")  # batch 1, log_freq 2: skipped
        logger.log(3.0, "loss", "metric", 2, 2, "Training")
    run = prov4ml.load_run(only_run_dir(tmp_path / "prov"))
    assert run.series("loss", "training", 0).value.tolist() == [1.0, 3.0]
    pytest.importorskip("lightning")
    from yprov4ml_hpc.integrations.lightning import ENV_RUN_ID, Yprov4mlLogger

    monkeypatch.setenv(ENV_RUN_ID, "positional")  # restored afterwards: nothing leaks to later tests
    lightning_logger = prov4ml.ProvMLLogger("lightning_logs", 3, "pre", 50)

    assert isinstance(lightning_logger, Yprov4mlLogger) and lightning_logger.name == "lightning_logs"
