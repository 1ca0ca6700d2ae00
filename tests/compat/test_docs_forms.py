"""The calls that yProv4ML's published docs (HPCI-Lab/yProv4ML.github.io) show, with only the import
changed: prov4ml 1.x-era names and orders that neither wheel's signature has.

Each test is a call a user copies from those pages; before these forms were recognised, each one
raised a TypeError (or, for ``get_metrics(keyword=...)``, silently returned nothing).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from conftest import start_quiet_run

import yprov4ml_hpc as prov4ml
from yprov4ml_hpc.utils import prov_getters as pg


def _start(tmp_path: Path) -> prov4ml.Run:
    return start_quiet_run(tmp_path, "docs")


def test_log_input_and_output_take_the_value_alone_numbered_in_call_order(tmp_path: Path) -> None:
    # reproducibility.md / reproducible_example.md: log_input(inp), log_output(out)
    _start(tmp_path)
    for i in range(1, 4):
        prov4ml.log_input(i)
        prov4ml.log_output(i**2)
    prov4ml.log_output(out=25, log_copy_in_prov_directory=True)
    prov4ml.log_input("named", 7)  # our (name, value) form still works beside them
    params = prov4ml.load_run(prov4ml.end_run()).params(0)
    assert {k: v for k, v in params.items() if k.startswith(("input_", "output_", "named"))} == {
        "input_0": 1,
        "input_1": 2,
        "input_2": 3,
        "output_0": 1,
        "output_1": 4,
        "output_2": 9,
        "output_3": 25,
        "named": 7,
    }


def test_numbering_starts_again_in_a_new_run(tmp_path: Path) -> None:
    _start(tmp_path / "a")
    prov4ml.log_input(1)
    prov4ml.end_run()
    _start(tmp_path / "b")
    prov4ml.log_input(2)
    assert prov4ml.load_run(prov4ml.end_run()).params(0)["input_0"] == 2


def test_log_input_of_a_path_with_the_copy_flag(tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_text("a,b\n1,2\n")
    _start(tmp_path / "prov")
    prov4ml.log_input(str(data), False)  # log_input(inp, log_copy_in_prov_directory=False)
    run_dir = prov4ml.end_run()
    artifacts = prov4ml.load_run(run_dir).artifacts()
    assert [(a["name"], a["role"]) for a in artifacts] == [("input_0", "input")]
    assert not list((run_dir / "artifacts").rglob("input_0*"))  # not copied, as asked


def test_log_input_with_both_forms_at_once_is_a_clear_error(tmp_path: Path) -> None:
    _start(tmp_path)
    with pytest.raises(prov4ml.ConfigTypeError, match="value alone"):
        prov4ml.log_input("name", 1, inp=2)
    with pytest.raises(prov4ml.ConfigTypeError, match="needs a value"):
        prov4ml.log_output(name="result")
    prov4ml.end_run()


def test_log_artifact_in_the_docs_order_keywords_and_with_a_plain_value(tmp_path: Path) -> None:
    # logging.md: log_artifact(artifact_path, value, context, step, timestamp, log_copy_in_prov_directory)
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"\0" * 16)
    _start(tmp_path / "prov")
    prov4ml.log_artifact("by_position", str(weights), prov4ml.Context.TRAINING, 1, 1_700_000_000, True)
    prov4ml.log_artifact(artifact_path="by_keyword", value=str(weights), context=prov4ml.Context.TRAINING)
    prov4ml.log_artifact("a_value", 42, prov4ml.Context.TRAINING)  # "a file, a path, a value"
    with pytest.raises(prov4ml.ConfigTypeError, match="twice"):
        prov4ml.log_artifact(artifact_name="x", artifact_path=str(weights), value=str(weights))
    run = prov4ml.load_run(prov4ml.end_run())
    stored = {a["name"]: a for a in run.artifacts()}
    assert set(stored) == {"by_position", "by_keyword"}
    assert stored["by_position"]["step"] == 1 and stored["by_position"]["size"] == 16
    assert run.params(0)["a_value"] == 42


def test_log_model_with_the_docs_five_positionals_writes_the_layers(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    _start(tmp_path)
    # logging.md: log_model(model, model_name, log_model_info, log_model_layers, log_as_artifact)
    prov4ml.log_model(torch.nn.Linear(2, 2), "net", True, True, True)
    names = {a["name"] for a in prov4ml.load_run(prov4ml.end_run()).artifacts()}
    assert "models/net_layers_description.json" in names


def test_log_dataset_with_the_docs_keywords(tmp_path: Path) -> None:
    _start(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # label= is understood, not "ignored"
        prov4ml.log_dataset(dataset=list(range(10)), label="train")
    with pytest.raises(prov4ml.ConfigTypeError, match="needs a label and a dataset"):
        prov4ml.log_dataset(dataset=list(range(3)))
    artifacts = prov4ml.load_run(prov4ml.end_run()).artifacts()
    assert [(a["name"], a["kind"]) for a in artifacts] == [("train", "dataset")]


def test_prov_getters_keyword_selects_a_phase_by_its_context(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # prov_getters_example.md: pg.get_metrics(data, keyword="TRAINING"), then get_metric(data, key)
    monkeypatch.chdir(tmp_path)  # as after the script: the loaded dict's run is found from here
    _start(tmp_path)
    for step in range(3):
        prov4ml.log_metric("loss", 1.0 / (step + 1), prov4ml.Context.TRAINING, step)
        prov4ml.log_metric("loss", 2.0, prov4ml.Context.VALIDATION, step)
    run_dir = prov4ml.end_run()
    data = json.loads(next(run_dir.glob("prov_*.json")).read_text())
    keys = pg.get_metrics(data, keyword="TRAINING")
    assert len(keys) == 1 and data["entity"][keys[0]]["yprov4ml:context"] == "training"
    assert list(pg.get_metric(data, keys[0])["value"]) == [1.0, 0.5, 1.0 / 3]
    assert len(pg.get_metrics(data, keyword="loss")) == 2  # a name still matches as before


def test_upstream_reading_example_names_resolve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # examples/reading_example.py (the getters' example): upstream's per-process document path,
    # its run id "<experiment>_GR<rank>_<N>", "<label>//<context>" and its attribute names
    from yprov4ml_hpc.utils import getters

    monkeypatch.chdir(tmp_path)
    start_quiet_run(Path("prov"), "example")
    prov4ml.log_dataset("train_dataset", _Loader(), prov4ml.Context.TRAINING)
    prov4ml.log_metric("MSE", 0.5, prov4ml.Context.TRAINING, 0)
    run_dir = prov4ml.end_run()
    path = "prov/example_0/prov_example_GR0_0.json"  # upstream's default path, unchanged
    assert getters.get_parameter(path, "example_GR0_0", "yprov:run_id") == run_dir.name.rsplit("_", 1)[1]
    assert getters.get_parameter(path, "example_GR0_0", "yprov4ml:rank") == 0
    assert getters.get_parameter(path, "train_dataset//Training", "yprov:train_dataset_stat_batch_size") == 4
    started = getters.get_parameter(path, "Training", "prov:startedAtTime")
    assert isinstance(started, str) and started.startswith("20")
    assert getters.list_parameters(path, "train_dataset//Training")["yprov4ml:name"] == "train_dataset"
    with pytest.raises(KeyError, match="example_GR5_0"):  # no rank 5: still the clear KeyError
        getters.get_parameter(path, "example_GR5_0", "yprov:run_id")
    with pytest.raises(FileNotFoundError):  # another experiment's name is not redirected
        getters.list_activities("prov/example_0/prov_other_GR0_0.json")


class _Loader:
    """A DataLoader's attributes, without torch: 8 samples in batches of 4."""

    def __init__(self) -> None:
        self.dataset = list(range(8))
        self.batch_size = 4
        self.num_workers = 0

    def __len__(self) -> int:
        return 2
