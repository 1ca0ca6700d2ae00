"""Runs shared with a project group: everything we create follows the umask (README: "Sharing
runs with a group"), so under ``umask 027`` the group can read all of it and others nothing,
whatever the permissions of the files the script logged."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

JOB = r"""
import os, sys
from pathlib import Path
os.umask(0o027)
save = Path(sys.argv[1])
private = save / "private"                  # the user's own files, readable by them only
(private / "ckpt").mkdir(parents=True)
(private / "ckpt" / "weights.bin").write_bytes(b"w")
(private / "model.bin").write_bytes(b"m")
for path, mode in ((private / "ckpt" / "weights.bin", 0o600), (private / "model.bin", 0o600),
                   (private / "ckpt", 0o700)):
    os.chmod(path, mode)
import yprov4ml_hpc as prov4ml
from yprov4ml_hpc._cli import main
prov4ml.start_run("share", provenance_save_dir=save / "prov", system_metrics_interval_s=0)
prov4ml.log_metric("loss", 1.0, context="training")
prov4ml.log_param("lr", 0.1)
prov4ml.log_artifact("model.bin", private / "model.bin")
prov4ml.log_artifact("ckpt", private / "ckpt")
run_dir = prov4ml.end_run(create_graph=True)
for args in (["report", str(run_dir), "--no-figures"], ["export", str(run_dir), "--format", "csv"],
             ["export", str(run_dir), "--format", "metrics-json"], ["merge", str(run_dir), "--consolidate"]):
    assert main(args) == 0, args
print(run_dir)
"""


def test_everything_follows_the_umask(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "YPROV4ML_HPC_CARBON": "0"}
    proc = subprocess.run(
        [sys.executable, "-c", JOB, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = Path(proc.stdout.strip().splitlines()[-1])
    paths = [run_dir, *run_dir.rglob("*")]
    kinds = {p.relative_to(run_dir).parts[0] if p != run_dir else "." for p in paths}
    assert {"ranks", "artifacts", "csv", "summary.json", "report.html", "graph.dot"} <= kinds
    wrong = {
        str(p.relative_to(run_dir)): oct(stat.S_IMODE(p.lstat().st_mode))
        for p in paths
        if not p.is_symlink()
        and stat.S_IMODE(p.lstat().st_mode) != (0o750 if p.is_dir() else 0o640)
    }
    assert wrong == {}, wrong
