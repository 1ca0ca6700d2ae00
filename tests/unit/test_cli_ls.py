"""`yprov4ml-hpc ls`: runs of a provenance folder, with their status; errors are one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from _runfactory import assert_user_error, cli, shared_run


def _prov_dir(tmp_path: Path) -> Path:
    prov = tmp_path / "prov"
    prov.mkdir()
    for name in ("one", "crash"):
        shutil.copytree(shared_run(name), prov / shared_run(name).name)
    return prov


def test_ls_lists_runs_with_status_and_merge_state(tmp_path: Path) -> None:
    prov = _prov_dir(tmp_path)
    proc = cli("ls", str(prov))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[2].split()[:4] == ["experiment", "run", "id", "ranks"]
    one = next(line for line in lines if line.split()[:2] == ["demo", "one"])
    crash = next(line for line in lines if line.split()[:2] == ["demo", "crash"])
    assert "1/1" in one and "finished" in one and one.rstrip().endswith("yes")
    # The killed rank's process is gone (same host, dead pid): called incomplete, as merge will.
    assert "3/3" in crash and "2 finished, 1 incomplete" in crash and crash.rstrip().endswith("no")
    assert "yprov4ml-hpc merge" in proc.stdout  # the hint for the unmerged run


def test_ls_json(tmp_path: Path) -> None:
    prov = _prov_dir(tmp_path)
    proc = cli("ls", str(prov), "--json")
    assert proc.returncode == 0, proc.stderr
    runs = {Path(r["path"]).name: r for r in json.loads(proc.stdout)["runs"]}
    assert runs["demo_one"]["merged"] is True and runs["demo_one"]["world_size"] == 1
    assert runs["demo_crash"]["status_counts"] == {"finished": 2, "incomplete": 1}
    assert runs["demo_crash"]["duration_s"] > 0


def test_ls_on_a_run_directory_lists_that_run(tmp_path: Path) -> None:
    proc = cli("ls", str(shared_run("one")))
    assert proc.returncode == 0, proc.stderr
    assert any(line.split()[:2] == ["demo", "one"] for line in proc.stdout.splitlines())


def test_ls_reports_a_damaged_rank_file(tmp_path: Path) -> None:
    prov = _prov_dir(tmp_path)
    (prov / "demo_crash" / "ranks" / "rank_000001.h5").write_bytes(b"not hdf5 at all")
    proc = cli("ls", str(prov))
    assert proc.returncode == 0, proc.stderr
    assert "1 damaged" in next(line for line in proc.stdout.splitlines() if line.split()[1:2] == ["crash"])


def test_ls_empty_folder_says_so(tmp_path: Path) -> None:
    proc = cli("ls", str(tmp_path))
    assert proc.returncode == 0
    assert "no run directories" in proc.stderr


def test_ls_missing_folder(tmp_path: Path) -> None:
    assert_user_error(cli("ls", str(tmp_path / "nope")), "no such directory")


def test_ls_on_a_file(tmp_path: Path) -> None:
    path = tmp_path / "file.txt"
    path.write_text("x")
    assert_user_error(cli("ls", str(path)), "not a directory")
