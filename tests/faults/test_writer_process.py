"""start_run(writer="process"): the journal written by a process of the rank's own.

Real processes, real signals: the writer process SIGKILLed at random moments while the rank
logs (the rank takes over, every point exactly once), the rank SIGKILLed (its writer writes
what it was handed, then exits: no orphan), SIGTERM to the whole process group (the writer
ignores it; the rank ends its run through it), forks of the rank.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
from faults_harness import (
    SCRIPTS,
    TOKEN_VAR,
    attach_strace,
    clean_env,
    live_tokens,
    merge,
    merged_statuses,
    seed_for,
)

import yprov4ml_hpc as prov4ml

SCRIPT = SCRIPTS / "writer_process.py"
QUIET = {"system_metrics_interval_s": 0, "install_signal_handlers": False, "disable_codecarbon": True}


def _same_run(save: Path, writer: str) -> prov4ml.RunData:
    """One rank's run: 23 series (more than start_run prepares rings for; two past a ring), a
    large param, an artifact."""
    run = prov4ml.start_run("same", provenance_save_dir=save, writer=writer, buffer_size=256, **QUIET)
    for step in range(3000):
        run.log_metric("loss", 1.0 / (step + 1), "training", step)
        if step % 7 == 0:
            run.log_metric("acc", step * 0.01, "validation", step)
        if step % 100 == 0:
            for layer in range(20):
                run.log_metric(f"grad_norm_{layer}", step + layer, "training", step)
    run.log_metric("lr", 0.1)
    run.log_param("config", "x" * 200_000)  # larger than one message: travels in a memfd
    (save / "notes.txt").write_text("hello")
    run.log_artifact("notes", save / "notes.txt")
    run_dir = run.run_dir
    prov4ml.end_run()
    return prov4ml.load_run(run_dir)


def test_the_writer_process_writes_what_the_thread_writes(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        thread, process = (_same_run(tmp_path / w, w) for w in ("thread", "process"))
    assert process.problems == [] and process.ranks[0].status == "finished"
    assert process.series_keys() == thread.series_keys()
    for key in thread.series_keys():
        ours, theirs = process.series(*key), thread.series(*key)
        assert np.array_equal(ours.step, theirs.step) and np.array_equal(ours.value, theirs.value), key
    assert process.params() == thread.params() and len(process.params()["config"]) == 200_000
    assert [a["name"] for a in process.artifacts()] == [a["name"] for a in thread.artifacts()]
    assert process.meta(0).attrs.raw["journal_writer"] == "process"


def test_an_unknown_writer_is_refused_with_the_choices(tmp_path: Path) -> None:
    with pytest.raises(prov4ml.ConfigError, match=r"writer must be one of \('thread', 'process'\).*'proc'"):
        prov4ml.start_run("bad", provenance_save_dir=tmp_path, writer="proc", **QUIET)
    assert prov4ml.active_run() is None


def _env() -> dict[str, str]:
    token = f"writer-process-{os.getpid()}-{time.monotonic_ns()}"
    live_tokens.append(token)
    return clean_env(**{TOKEN_VAR: token})


def _lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def _field(lines: list[dict[str, Any]], key: str) -> Any:
    found = [line[key] for line in lines if key in line]
    assert found, lines
    return found[-1]


def _points(run_dir: Path) -> dict[str, np.ndarray]:
    data = prov4ml.load_run(run_dir)
    assert data.problems == [], data.problems
    return {key[0]: data.series(*key).step for key in data.series_keys()}


def _gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("case", range(4))
def test_writer_killed_at_a_random_moment(tmp_path: Path, case: int) -> None:
    """SIGKILL to the writer process mid-run: a warning, the rank writes on, nothing lost or doubled."""
    proc = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), "kill_writer",
                           str(seed_for(f"kill_writer{case}"))],
                          capture_output=True, text=True, timeout=120, env=_env(), check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = _lines(proc.stdout)
    points = _field(lines, "points")
    warned = _field(lines, "warnings")
    assert any("journal writer process" in w and "ended" in w for w in warned), warned
    run_dir = Path(_field(lines, "run_dir"))
    steps = _points(run_dir)
    for name in ("loss", "acc"):
        assert np.array_equal(np.sort(steps[name]), np.arange(points)), (name, len(steps[name]), points)
        assert np.array_equal(steps[name], np.sort(steps[name]))  # in logging order
    data = prov4ml.load_run(run_dir)
    assert data.params().get("after_kill") == points - 1000
    assert data.ranks[0].status == "finished"


def _start_waiting(tmp_path: Path) -> tuple[subprocess.Popen[str], Path, int]:
    proc = subprocess.Popen([sys.executable, str(SCRIPT), str(tmp_path), "wait"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env(), start_new_session=True)
    assert proc.stdout is not None
    lines: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    while not any("ready" in line for line in lines):
        assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        lines += _lines(proc.stdout.readline())
    return proc, Path(_field(lines, "run_dir")), int(_field(lines, "writer_pid"))


def test_rank_killed_its_writer_writes_what_it_was_handed_and_exits(tmp_path: Path) -> None:
    """SIGKILL to the rank: its writer process writes every handed-over batch and exits."""
    proc, run_dir, writer_pid = _start_waiting(tmp_path)
    proc.kill()
    proc.communicate(timeout=30)
    assert _gone(writer_pid, 15.0), "the writer process outlived its rank"
    summary = merge(run_dir)
    assert merged_statuses(summary) == {0: "incomplete"}  # died without a word
    steps = _points(run_dir)
    for name in ("loss", "acc"):
        # 10,000 points, buffer_size 1000: the last hand-off was at 9,500 (the rest was in the ring)
        assert np.array_equal(steps[name], np.arange(9500)), (name, len(steps[name]))


def test_sigterm_to_the_process_group_ends_the_run_through_the_writer(tmp_path: Path) -> None:
    """scancel's SIGTERM reaches the writer too: it ignores it, the rank flushes and ends."""
    proc, run_dir, writer_pid = _start_waiting(tmp_path)
    os.killpg(proc.pid, signal.SIGTERM)
    proc.communicate(timeout=60)
    assert _gone(writer_pid, 15.0), "the writer process outlived its rank"
    data = prov4ml.load_run(run_dir)
    assert data.ranks[0].status == "killed"
    steps = _points(run_dir)
    for name in ("loss", "acc"):
        assert np.array_equal(steps[name], np.arange(10_000)), (name, len(steps[name]))


def test_forks_of_the_rank_leave_its_run_intact(tmp_path: Path) -> None:
    """os.fork and a fork Pool (5 x map) mid-run: the parent's run is complete and finished."""
    proc = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), "fork"],
                          capture_output=True, text=True, timeout=120, env=_env(), check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = _lines(proc.stdout)
    assert [w for w in _field(lines, "warnings") if "NVML" not in w] == []
    run_dir = Path(_field(lines, "run_dir"))
    steps = _points(run_dir)
    for name in ("loss", "acc"):
        assert np.array_equal(steps[name], np.arange(6000)), (name, len(steps[name]))
    assert prov4ml.load_run(run_dir).ranks[0].status == "finished"


STRACE = shutil.which("strace")


def _kill_writer_at(tmp_path: Path, call: int) -> tuple[list[dict[str, Any]], str]:
    """Run the ``traced`` subject with SIGKILL on entry to its writer process's ``call``-th writev."""
    assert STRACE is not None
    subject = subprocess.Popen([sys.executable, str(SCRIPT), str(tmp_path), "traced"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    assert subject.stdin is not None and subject.stdout is not None
    tracer = None
    try:
        first = _lines(subject.stdout.readline())
        writer_pid = int(_field(first, "writer_pid"))
        try:
            tracer = attach_strace(writer_pid, "-o", "/dev/null", "-e", "trace=writev",
                                   "-e", f"inject=writev:signal=KILL:when={call}")
        except RuntimeError as exc:
            pytest.skip(f"strace cannot trace here: {exc}")
        subject.stdin.write("go\n")
        subject.stdin.flush()
        out, err = subject.communicate(timeout=120)
        assert subject.returncode == 0, err[-3000:]
        tracer.wait(timeout=30)
    finally:
        for proc in (subject, tracer):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    return first + _lines(out), err


def _check_whole(lines: list[dict[str, Any]]) -> bool:
    """Every point once, the param, finished; returns whether the writer was replaced."""
    run_dir = Path(_field(lines, "run_dir"))
    steps = _points(run_dir)
    for name in ("loss", "acc"):
        assert np.array_equal(steps[name], np.arange(6000)), (name, len(steps[name]))
    data = prov4ml.load_run(run_dir)
    assert data.params().get("middle") == 3000
    assert data.ranks[0].status == "finished"
    return any("journal writer process" in w for w in _field(lines, "warnings"))


@pytest.mark.skipif(STRACE is None, reason="strace is not installed (apt-get install strace)")
def test_writer_killed_at_each_of_its_first_writes(tmp_path: Path) -> None:
    """SIGKILL on entry to each of the writer process's first 6 writev calls (the start frames,
    the first batches, the param): the rank takes over every time and loses nothing."""
    for call in range(1, 7):
        lines, err = _kill_writer_at(tmp_path / f"at{call}", call)
        assert _check_whole(lines), f"writev #{call}: the writer was not killed\n{err[-2000:]}"


@pytest.mark.slow
@pytest.mark.skipif(STRACE is None, reason="strace is not installed (apt-get install strace)")
def test_writer_killed_at_every_write(tmp_path: Path) -> None:
    """The same at every writev of the run, until one past the last (no kill: nothing to replace)."""
    call = 1
    while _check_whole(_kill_writer_at(tmp_path / f"at{call}", call)[0]):
        call += 1
    assert call > 5, f"only {call - 1} writes: the subject did not exercise the writer"
