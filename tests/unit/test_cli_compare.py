"""`yprov4ml-hpc compare`: differing params and final metrics side by side."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _runfactory import assert_user_error, cli, make_run, shared_run


@pytest.fixture(scope="module")
def other_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Like 'one' but with another learning rate and an extra param."""
    return make_run(
        tmp_path_factory.mktemp("other"),
        1,
        run_id="other",
        steps=60,
        hardware=False,
        params={"lr": 0.1, "warmup": 5},
    )


def test_compare_params_and_final_metrics(other_run: Path) -> None:
    proc = cli("compare", str(shared_run("one")), str(other_run))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "demo_one" in out and "demo_other" in out
    params = out.split("params that differ")[1].split("final metric values")[0]
    rows = {line.split()[0]: line.split()[1:] for line in params.splitlines()[2:] if line.strip()}
    assert rows == {"lr": ["0.01", "0.1"], "warmup": ["(not", "set)", "5"]}
    metrics = out.split("final metric values")[1]
    assert "loss" in metrics and "%" in metrics
    assert "gpu0/power_w" not in metrics  # samplers only with --system
    assert "gpu0/power_w" in cli("compare", str(shared_run("one")), str(other_run), "--system").stdout


def test_compare_json(other_run: Path) -> None:
    proc = cli("compare", str(shared_run("one")), str(other_run), "--json", "--all-params")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    params = {p["name"]: p for p in data["params"]}
    assert params["optimizer"]["a"] == params["optimizer"]["b"] == "adamw"
    assert params["warmup"]["a_set"] is False and params["warmup"]["b"] == 5
    loss = next(m for m in data["metrics"] if m["name"] == "loss")
    summary = json.loads((shared_run("one") / "summary.json").read_text())
    assert loss["a"] == next(m["last"] for m in summary["metrics"] if m["name"] == "loss")


def test_compare_errors_are_one_line(tmp_path: Path) -> None:
    assert_user_error(cli("compare", str(shared_run("one")), str(tmp_path / "missing")), "no such directory")
    assert_user_error(
        cli("compare", str(tmp_path), str(shared_run("one"))), "not a yprov4ml_hpc run directory"
    )
    proc = cli("compare", str(shared_run("one")))
    assert proc.returncode == 2 and "RUN_B" in proc.stderr  # argparse's own usage error
