"""`yprov4ml-hpc summary`: summary.json as tables, or the same numbers before a merge."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from _runfactory import assert_user_error, cli, shared_run


def test_summary_of_a_merged_run(tmp_path: Path) -> None:
    proc = cli("summary", str(shared_run("eight")))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "8 ranks on 2 node(s)" in out and "8 finished" in out and "summary.json (finalize" in out
    assert "stragglers" in out and "rank 5 (node01)" in out
    rank_lines = [line.split() for line in out.splitlines() if line.strip().startswith(("0 ", "5 "))]
    assert any(cols[0] == "5" and cols[4] == "*" for cols in rank_lines)  # the straggler is marked
    for metric in ("loss", "accuracy", "val_loss"):
        assert any(line.split()[:1] == [metric] for line in out.splitlines())
    assert "sampler series" in out and "energy   total" in out and "kg CO2e" in out


def test_summary_json_is_summary_json(tmp_path: Path) -> None:
    run_dir = shared_run("eight")
    proc = cli("summary", str(run_dir), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == json.loads((run_dir / "summary.json").read_text())


def test_summary_before_merge_equals_what_merge_writes(tmp_path: Path) -> None:
    crash = tmp_path / "crash"
    shutil.copytree(shared_run("crash"), crash)
    proc = cli("summary", str(crash))
    assert proc.returncode == 0, proc.stderr
    assert "computed from the rank files" in proc.stdout and "1 incomplete" in proc.stdout
    before = json.loads(cli("summary", str(crash), "--json").stdout)
    assert not (crash / "summary.json").exists()  # a read-only command writes nothing
    merged = cli("merge", str(crash))
    assert merged.returncode == 0, merged.stderr
    after = json.loads((crash / "summary.json").read_text())
    for key in ("ranks", "metrics", "stragglers", "energy", "world_size"):
        assert before[key] == after[key], key


def test_summary_condenses_many_ranks(tmp_path: Path) -> None:
    run_dir = tmp_path / "big"
    shutil.copytree(shared_run("one"), run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    template = summary["ranks"][0]
    summary["ranks"] = [
        {
            **template,
            "rank": r,
            "host": f"n{r // 8}",
            "status": "killed" if r == 17 else "finished",
            "wall_time_s": 10.0 + r,
        }
        for r in range(40)
    ]
    summary["world_size"] = 40
    (run_dir / "summary.json").write_text(json.dumps(summary))
    out = cli("summary", str(run_dir)).stdout
    assert "nodes" in out and "ranks worth a look" in out
    shown = {
        line.split()[0]
        for line in out.split("ranks worth a look")[1].splitlines()[2:]
        if line.strip() and line.split()[0].isdigit()
    }
    assert "17" in shown and "39" in shown and "3" not in shown
    full = cli("summary", str(run_dir), "--all-ranks").stdout
    assert "ranks worth a look" not in full and len([ln for ln in full.splitlines() if " n4 " in ln]) == 8


def test_summary_errors_are_one_line(tmp_path: Path) -> None:
    assert_user_error(cli("summary", str(tmp_path / "missing")), "no such directory")
    assert_user_error(cli("summary", str(tmp_path)), "not a yprov4ml_hpc run directory")
    damaged = tmp_path / "damaged"
    (damaged / "ranks").mkdir(parents=True)
    (damaged / "ranks" / "rank_000000.h5").write_bytes(b"\x89HDF\r\n\x1a\n truncated")
    assert_user_error(cli("summary", str(damaged)), "no readable rank file", "rank_000000.h5")


def test_summary_damaged_summary_json(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(shared_run("one"), run_dir)
    (run_dir / "summary.json").write_text('{"schema": "yprov4ml_hpc/summary", "ranks": [')
    assert_user_error(cli("summary", str(run_dir)), "summary.json", "yprov4ml-hpc merge")
    (run_dir / "summary.json").write_text('{"schema": "something else"}')
    assert_user_error(cli("summary", str(run_dir)), "not a yprov4ml_hpc summary")


def test_summary_warns_about_one_damaged_rank_among_good_ones(tmp_path: Path) -> None:
    crash = tmp_path / "crash"
    shutil.copytree(shared_run("crash"), crash)
    (crash / "ranks" / "rank_000001.h5").write_bytes(b"garbage")
    proc = cli("summary", str(crash))
    assert proc.returncode == 0, proc.stderr
    assert "damaged rank file rank_000001.h5" in proc.stderr
    assert "missing" in proc.stdout  # merged around it, as the merge does


def test_summary_of_a_multi_run_merge(tmp_path: Path) -> None:
    out = tmp_path / "merged"
    merged = cli("merge", str(shared_run("one")), str(shared_run("eight")), "-o", str(out))
    assert merged.returncode == 0, merged.stderr
    proc = cli("summary", str(out))  # summary.json only: no rank files in a merge's -o folder
    assert proc.returncode == 0, proc.stderr
    assert "merged from 2 runs, in order: one (1 ranks), eight (8 ranks)" in proc.stdout
    assert any(line.split()[:1] == ["eight:5"] and "*" in line for line in proc.stdout.splitlines())
