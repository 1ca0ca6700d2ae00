"""The Lightning logger: in-process behaviour, and a real 2-process DDP fit on CPU (gloo).

Skipped where torch or lightning is not installed (CI installs torch==2.13.0, the CPU build).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from argparse import Namespace
from pathlib import Path

import pytest

import yprov4ml_hpc as prov4ml

pytest.importorskip("torch")
pytest.importorskip("lightning")

from yprov4ml_hpc.integrations.lightning import ENV_RUN_ID, Yprov4mlLogger, context_of

REPO = Path(__file__).resolve().parents[2]
QUIET = {"flush_interval_s": 0, "system_metrics_interval_s": 0, "disable_codecarbon": True}


@pytest.fixture(autouse=True)
def _no_shared_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_RUN_ID, raising=False)
    warnings.simplefilter("ignore", prov4ml.SamplerUnavailableWarning)


def test_context_of_lightning_names() -> None:
    assert context_of("train_loss") == "training"
    assert context_of("val_loss") == "validation" and context_of("valid/acc") == "validation"
    assert context_of("test_acc") == "testing" and context_of("predict_x") == "inference"
    assert context_of("epoch") == "training" and context_of("lr-SGD") == "training"


def test_logger_records_params_and_metrics_then_finalizes(tmp_path: Path) -> None:
    logger = Yprov4mlLogger("lit", provenance_save_dir=tmp_path, **QUIET)
    assert logger.name == "lit" and logger.save_dir is None
    logger.log_hyperparams({"lr": 0.1, "model": {"width": 32, "act": "relu"}, "cls": object})
    logger.log_hyperparams(Namespace(batch_size=8))
    for step in range(5):
        logger.log_metrics({"train_loss": 1.0 / (step + 1), "epoch": 0}, step=step)
    logger.log_metrics({"val_loss": 0.5}, step=4)
    run_dir = logger.experiment.run_dir
    assert logger.version == logger.experiment.run_id
    logger.finalize("success")
    assert prov4ml.active_run() is None and ENV_RUN_ID not in os.environ
    data = prov4ml.load_run(run_dir)
    params = data.params(0)
    assert params["lr"] == 0.1 and params["model/width"] == 32 and params["batch_size"] == 8
    assert params["cls"] == repr(object)
    assert data.series("train_loss", "training", 0).step.tolist() == [0, 1, 2, 3, 4]
    assert data.series("val_loss", "validation", 0).value.tolist() == [0.5]
    assert json.loads((run_dir / "summary.json").read_text())["ranks"][0]["status"] == "finished"
    with pytest.warns(prov4ml.Yprov4mlWarning, match="after the run ended"):
        logger.log_metrics({"test_acc": 1.0}, step=0)  # after fit's finalize: said, not recorded


@pytest.mark.parametrize("logger_class", ["Yprov4mlLogger", "ProvMLLogger"])
def test_logger_uses_the_scripts_active_run(tmp_path: Path, logger_class: str) -> None:
    run = prov4ml.start_run("script", provenance_save_dir=tmp_path, **QUIET)
    logger = Yprov4mlLogger("ignored") if logger_class == "Yprov4mlLogger" else prov4ml.ProvMLLogger()
    logger.log_metrics({"train_loss": 1.0}, step=0)
    logger.finalize("success")
    assert prov4ml.active_run() is run  # the script started it, the script ends it
    # trainer.test() after fit (upstream's prov4ml_MLlogger.py): still the script's open run
    with warnings.catch_warnings():
        warnings.simplefilter("error", prov4ml.Yprov4mlWarning)
        logger.log_metrics({"test_acc": 0.75}, step=0)
    prov4ml.end_run()
    with pytest.warns(prov4ml.Yprov4mlWarning, match="after the script's end_run"):
        logger.log_metrics({"test_acc": 0.5}, step=1)  # said, not recorded
    data = prov4ml.load_run(run.run_dir)
    assert data.series("train_loss", "training", 0).value.tolist() == [1.0]
    assert data.series("test_acc", "testing", 0).value.tolist() == [0.75]


def test_end_on_finalize_false_keeps_the_run_for_test(tmp_path: Path) -> None:
    logger = Yprov4mlLogger("lit", provenance_save_dir=tmp_path, end_on_finalize=False, **QUIET)
    logger.log_metrics({"train_loss": 1.0}, step=0)
    logger.finalize("success")
    logger.log_metrics({"test_acc": 0.9}, step=0)  # trainer.test after fit
    run_dir = logger.end_run()
    assert run_dir is not None and (run_dir / "summary.json").is_file()
    assert prov4ml.load_run(run_dir).series("test_acc", "testing", 0).value.tolist() == [0.9]


def test_failed_fit_marks_the_rank_failed_and_keeps_its_document(tmp_path: Path) -> None:
    logger = Yprov4mlLogger("lit", provenance_save_dir=tmp_path, **QUIET)
    logger.log_metrics({"train_loss": 1.0}, step=0)
    run_dir = logger.experiment.run_dir
    logger.finalize("failed")
    assert prov4ml.load_run(run_dir).ranks[0].status == "failed"
    # One process: nobody to wait for, so the failed run gets its document at once.
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [r["status"] for r in summary["ranks"]] == ["failed"]


@pytest.mark.timeout(600)
def test_two_process_ddp_fit_records_both_ranks(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "YPROV4ML_HPC_CARBON": "0", "PYTHONWARNINGS": "ignore"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_JOB_ID", "SLURM_PROCID", ENV_RUN_ID):
        env.pop(name, None)
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "examples" / "lightning_example.py"),
            "--devices",
            "2",
            "--epochs",
            "2",
            "--save-dir",
            str(tmp_path),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    [run_dir] = [p for p in tmp_path.iterdir() if p.name.startswith("lightning_demo_")]
    assert "2 rank(s) recorded" in proc.stdout
    data = prov4ml.load_run(run_dir)
    assert [r.rank for r in data.ranks] == [0, 1] and data.world_size == 2
    assert all(r.status == "finished" for r in data.ranks)
    for rank in (0, 1):
        assert data.params(rank)["lr"] == 0.05
        loss = data.series("train_loss", "training", rank)
        assert len(loss) == 16 and loss.step.tolist() == sorted(loss.step.tolist())  # 1024/64/2 x 2 epochs
        assert len(data.series("val_loss", "validation", rank)) == 2
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["world_size"] == 2 and {r["status"] for r in summary["ranks"]} == {"finished"}
