"""Real jobs under mpiexec: a SIGKILLed rank, a rank that never ends, damaged files, the CLI."""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import prov
import pytest
import rdflib

SCRIPT = Path(__file__).with_name("scripts") / "mpi_job.py"
_BIN = Path(sysconfig.get_path("scripts"))
MPIEXEC = str(_BIN / "mpiexec") if (_BIN / "mpiexec").exists() else shutil.which("mpiexec")
CLI = str(_BIN / "yprov4ml-hpc") if (_BIN / "yprov4ml-hpc").exists() else shutil.which("yprov4ml-hpc")

pytestmark = [
    pytest.mark.skipif(MPIEXEC is None, reason="needs mpiexec (pip install mpich)"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:rdflib"),
]

sys.path.insert(0, str(SCRIPT.parent))
from mpi_job import loss  # noqa: E402


def _start(n: int, *args: str) -> subprocess.Popen[str]:
    assert MPIEXEC is not None
    return subprocess.Popen(
        [MPIEXEC, "-n", str(n), sys.executable, str(SCRIPT), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # one process group: the test can always kill the whole job
    )


def _kill(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def _job(n: int, *args: str, limit_s: float = 120) -> tuple[int, str, str]:
    proc = _start(n, *args)
    try:
        out, err = proc.communicate(timeout=limit_s)
    finally:
        _kill(proc)
    return proc.returncode, out, err


def _run_dir(out: str) -> Path:
    match = re.search(r"RUN_DIR (\S+)", out)
    assert match is not None, out
    return Path(match.group(1))


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    assert CLI is not None
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=120, check=False)


def _read_back(path: Path) -> int:
    raw = json.loads(path.read_text())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        doc = prov.read(str(path), format="json")
    count = len(doc.get_records())
    assert count == sum(len(v) for k, v in raw.items() if k != "prefix")
    return count


def _summary(directory: Path) -> dict[str, Any]:
    return json.loads((directory / "summary.json").read_text())


def test_sigkilled_rank_is_recovered_by_merge(tmp_path: Path) -> None:
    steps = 150
    code, out, err = _job(3, str(tmp_path), "kill", "--rank-arg", "1", "--steps", str(steps))
    assert code != 0, (out, err)  # the job died with its rank
    run_dir = _run_dir(out)
    assert not (run_dir / "summary.json").exists()  # nobody finished the finalize
    merged = _cli("merge", str(run_dir))
    assert merged.returncode == 0, merged.stderr
    assert "2 finished" in merged.stdout and "1 incomplete (ranks 1)" in merged.stdout
    summary = _summary(run_dir)
    ranks = {r["rank"]: r for r in summary["ranks"]}
    assert [ranks[r]["status"] for r in range(3)] == ["finished", "incomplete", "finished"]
    assert ranks[1]["steps"] == steps  # everything up to its last flush, none of the 7 after
    metric = next(m for m in summary["metrics"] if m["name"] == "loss")
    assert metric["count"] == 3 * steps
    assert metric["max"] == loss(2, 0) and metric["min"] == loss(0, steps - 1)
    assert metric["last"] == pytest.approx(sum(loss(r, steps - 1) for r in range(3)) / 3)
    _read_back(next(run_dir.glob("prov_*.json")))


def test_a_rank_that_never_ends_does_not_hold_the_others(tmp_path: Path) -> None:
    timeout = 3.0
    proc = _start(3, str(tmp_path), "sleep", "--rank-arg", "2", "--timeout", str(timeout))
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    stdout = proc.stdout
    threading.Thread(target=lambda: [lines.put(line) for line in stdout], daemon=True).start()
    returned: dict[int, float] = {}
    run_dir = None
    deadline = time.monotonic() + 60
    try:
        while len(returned) < 2 and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                continue
            for found in re.findall(r"RUN_DIR (\S+)", line):
                run_dir = Path(found)
            for rank, seconds in re.findall(r"RETURNED (\d+) ([0-9.]+)", line):
                returned[int(rank)] = float(seconds)
    finally:
        _kill(proc)  # the sleeping rank goes too: nothing is left running
    assert proc.returncode is not None
    assert set(returned) == {0, 1}, returned
    assert all(seconds < timeout + 8.0 for seconds in returned.values()), returned
    assert run_dir is not None
    summary = _summary(run_dir)
    assert [r["status"] for r in summary["ranks"]] == ["finished", "finished", "incomplete"]
    assert summary["generated_by"] == "finalize"
    _read_back(next(run_dir.glob("prov_*.json")))


def test_online_equals_offline_and_exports_parse(tmp_path: Path) -> None:
    code, out, err = _job(4, str(tmp_path / "runs"), "ok", "--steps", "50")
    assert code == 0, err
    # mpiexec forwards each rank's stdout in chunks: look for the words, not for whole lines.
    returned = sorted(int(rank) for rank in re.findall(r"RETURNED (\d+) ", out))
    assert returned == [0, 1, 2, 3], out
    run_dir = _run_dir(out)
    document = next(run_dir.glob("prov_*.json"))
    records = _read_back(document)
    offline = tmp_path / "offline"
    assert _cli("merge", str(run_dir), "-o", str(offline)).returncode == 0
    assert (offline / document.name).read_bytes() == document.read_bytes()
    online, again = _summary(run_dir), _summary(offline)
    for summary in (online, again):
        summary.pop("generated_by"), summary.pop("generated_at"), summary["collector"].pop("finalize_time_s")
    assert online == again
    for fmt in ("provn", "rdf", "jsonld"):
        result = _cli("export", str(run_dir), "--format", fmt)
        assert result.returncode == 0, result.stderr
    assert document.with_suffix(".provn").read_text().startswith("document")
    turtle = rdflib.Graph().parse(document.with_suffix(".ttl"), format="turtle")
    assert (
        len(
            list(
                turtle.subjects(
                    rdflib.RDF.type, rdflib.URIRef("https://w3id.org/yprov4ml-hpc/ns#RankProcess")
                )
            )
        )
        == 4
    )
    assert len(rdflib.Graph().parse(document.with_suffix(".jsonld"), format="json-ld")) == len(turtle)
    if _cli("export", str(run_dir), "--format", "xml").returncode == 0:  # needs prov[xml]
        assert len(prov.read(str(document.with_suffix(".xml")), format="xml").get_records()) == records


def test_damaged_files_and_several_runs(tmp_path: Path) -> None:
    dirs = []
    for run_id in ("first", "second"):
        code, out, err = _job(2, str(tmp_path), "ok", "--steps", "20", "--run-id", run_id)
        assert code == 0, err
        dirs.append(_run_dir(out))
    (dirs[0] / "ranks" / "rank_000001.h5").unlink()  # missing
    second = dirs[1] / "ranks" / "rank_000000.h5"
    second.write_bytes(second.read_bytes()[:4096])  # truncated
    out_dir = tmp_path / "both"
    merged = _cli("merge", str(dirs[0]), str(dirs[1]), "-o", str(out_dir))
    assert merged.returncode == 0, merged.stderr
    assert "1 missing (ranks 1)" in merged.stdout and "damaged: rank_000000.h5" in merged.stdout
    summary = _summary(out_dir)
    assert [(r["run_id"], r["status"]) for r in summary["ranks"]] == [
        ("first", "finished"),
        ("first", "missing"),
        ("second", "missing"),
        ("second", "finished"),
    ]
    assert summary["problems"][0]["file"] == "rank_000000.h5"
    raw = json.loads(next(out_dir.glob("prov_*.json")).read_text())
    assert [tuple(r.values()) for r in raw["wasInformedBy"].values()] == [("run2:job", "run1:job")]
    _read_back(next(out_dir.glob("prov_*.json")))
    strict = _cli("merge", "--strict", str(dirs[0]), str(dirs[1]), "-o", str(out_dir))
    assert strict.returncode == 2 and strict.stderr.count("\n") == 1 and "rank_000000.h5" in strict.stderr


def test_without_mpi_rank_0_waits_for_the_other_rank_files(tmp_path: Path) -> None:
    procs = []
    for rank in (0, 1):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI", "MPI", "OMPI", "HYDRA"))}
        env.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE="2")
        procs.append(
            subprocess.Popen(
                [sys.executable, str(SCRIPT), str(tmp_path), "ok", "--run-id", "torch1", "--steps", "30"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
        )
        time.sleep(1.0)  # rank 1 arrives a second later: rank 0 must wait for its file to close
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    run_dir = tmp_path / "e2e_torch1"
    summary = _summary(run_dir)
    assert summary["generated_by"] == "finalize"
    assert [r["status"] for r in summary["ranks"]] == ["finished", "finished"]
    assert next(m for m in summary["metrics"] if m["name"] == "loss")["count"] == 60
