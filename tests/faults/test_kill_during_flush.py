"""SIGKILL at every write of a flush: the crash-consistency claim of DESIGN section 4, exhaustively.

A random SIGKILL rarely lands inside a flush (a few ms of each second), so this case puts it
there on purpose: ``strace`` delivers SIGKILL on entry to the N-th ``write`` and, separately,
the N-th ``writev`` of the process (any thread: the journal writer's point batches go out with
writev, other frames and the wake-up bytes with write), for every N inside the first data
flush and inside a later one (the windows are found by a dry run that writes markers between
the flushes).  A write cut half-way is covered by
``test_journal.py`` (a journal truncated at every byte).  The subject logs a param, flushes FIRST
points of two series, then SECOND more.

What may be lost: the flush that was cut.  The file stays readable; each series holds exactly
the points of the previous flush or of the cut one (never an unreadable file, a series whose
read fails, or zeros); the param, flushed before, is there.  Skipped without strace.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from faults_harness import SCRIPTS, attach_strace, clean_env

import yprov4ml_hpc as prov4ml

FIRST, SECOND = 3000, 3000
STRACE = shutil.which("strace")
# The writes aimed at are the rank's own: its journal written by the writer thread.  The writer
# process (the default on Linux) is killed at each of its writes by test_writer_process.py.
SUBJECT_ENV = {"YPROV4ML_HPC_WRITER": "thread"}


def _traced_run(save: Path, *strace_args: str) -> tuple[Path | None, str]:
    """Start the subject, attach strace once it has imported everything (tracing the imports'
    syscalls would cost seconds), let it run; return its run directory and stderr."""
    assert STRACE is not None
    subject = subprocess.Popen(
        [sys.executable, str(SCRIPTS / "two_flushes.py"), str(save), str(FIRST), str(SECOND)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=clean_env(**SUBJECT_ENV),
    )
    assert subject.stdin is not None and subject.stdout is not None
    tracer = None
    try:
        assert subject.stdout.readline().strip() == "READY"
        tracer = attach_strace(subject.pid, "-f", *strace_args)
        subject.stdin.write("go\n")
        subject.stdin.flush()
        out, err = subject.communicate(timeout=120)
        tracer.wait(timeout=30)
    finally:
        for proc in (subject, tracer):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    lines = out.split()
    return (Path(lines[0]) if lines else None), err


@dataclass
class Windows:
    first: list[tuple[str, int]]  # (syscall, 1-based index among its calls) inside the first data flush
    later: list[tuple[str, int]]  # ... and inside the second one


@pytest.fixture(scope="module")
def windows(tmp_path_factory: pytest.TempPathFactory) -> Windows:
    if STRACE is None:
        pytest.skip("strace is not installed (apt-get install strace)")
    work = tmp_path_factory.mktemp("dry")
    trace = work / "trace.txt"
    try:
        _, err = _traced_run(work, "-o", str(trace), "-e", "trace=write,writev")
    except (RuntimeError, AssertionError, OSError) as exc:
        pytest.skip(f"strace cannot trace here: {exc}")
    if "DONE" not in err:
        pytest.skip(f"the traced subject did not finish: {err[-500:]}")
    # strace counts `when=N` per thread: number each thread's calls, note where the marks fall.
    counts: dict[tuple[str, str], int] = {}
    calls: list[tuple[str, int]] = []  # (syscall, that thread's index of it), in trace order
    marks: dict[str, int] = {}  # mark -> position in ``calls``
    for line in trace.read_text().splitlines():
        call = re.search(r"^(\d+)\s+(writev|write)\(", line)
        if call:
            key = (call.group(1), call.group(2))
            counts[key] = counts.get(key, 0) + 1
            calls.append((call.group(2), counts[key]))
        for mark in ("MARK0", "MARK1", "DONE"):
            if re.search(rf'write\(2, "{mark}', line):
                marks[mark] = len(calls)

    def window(start: str, stop: str) -> list[tuple[str, int]]:
        return sorted(set(calls[marks[start] : marks[stop] - 1]))

    found = Windows(first=window("MARK0", "MARK1"), later=window("MARK1", "DONE"))
    assert any(call == "writev" for call, _ in found.first), "no batch was written inside the window"
    return found


def _kill_at(call: str, write: int, work: Path) -> tuple[Path | None, str]:
    """Run the subject with SIGKILL on entry to its ``write``-th ``call``; return its run dir."""
    return _traced_run(work / f"kill_{call}{write}", "-o", "/dev/null", "-e", f"trace={call}",
                       "-e", f"inject={call}:signal=KILL:when={write}")


def _outcome(run_dir: Path, before: int, after: int, param_flushed: bool = True) -> str:
    """'' if the file holds exactly the previous or the cut flush, else what is wrong."""
    try:
        data = prov4ml.load_run(run_dir)
    except prov4ml.Yprov4mlError as exc:
        return f"unreadable run: {exc}"
    if data.problems:
        return f"unreadable file: {data.problems[0][1][:160]}"
    if data.params(0) != ({"lr": 0.5} if param_flushed else data.params(0) and {"lr": 0.5}):
        return f"params lost: {data.params(0)}"
    for metric, context, sign in (("loss", "training", 0.5), ("acc", "validation", -1.0)):
        if (metric, context, 0) not in data.series_keys():
            if before:
                return f"{metric} lost"
            continue
        try:
            series = data.series(metric, context, 0)
        except Exception as exc:
            return f"{metric}: {type(exc).__name__}: {str(exc)[:120]}"
        n = len(series)
        if n not in (before, after):
            return f"{metric}: {n} points (expected {before} or {after})"
        steps_ok = np.array_equal(series.step, np.arange(n))
        if not (steps_ok and np.array_equal(series.value, np.arange(n) * sign)):
            return f"{metric}: values differ from what was logged"
    return ""


def _bounds(stderr: str) -> tuple[int, int]:
    """(points of completed flushes, points logged) per series, from the markers printed before
    the kill.  The N-th write of a run is not always the same call (the training thread's
    wake-up bytes depend on timing), so what was completed is read from the run itself."""
    if "DONE" in stderr:
        return FIRST + SECOND, FIRST + SECOND
    if "MARK1" in stderr:
        return FIRST, FIRST + SECOND
    return 0, FIRST


def _sweep(points: list[tuple[str, int]], window: tuple[int, int], work: Path) -> None:
    """Kill at each point; every outcome must be a flush boundary between what had completed
    and what was logged.  Most kills must land inside ``window`` (else the sweep tested little)."""
    failures, inside = [], 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for call, write in points:
            run_dir, stderr = _kill_at(call, write, work)
            if run_dir is None:
                failures.append(f"{call} {write}: the subject did not start ({stderr[-300:]})")
                continue
            before, after = _bounds(stderr)
            inside += (before, after) == window
            # log_param returns once its record is written, before MARK0 is printed
            problem = _outcome(run_dir, before, after, param_flushed="MARK0" in stderr)
            if problem:
                failures.append(f"SIGKILL at {call} #{write}: {problem}")
    summary = f"{len(failures)} of {len(points)} kill points break the file:\n"
    assert not failures, summary + "\n".join(failures)
    assert inside >= len(points) / 2, f"only {inside} of {len(points)} kills landed inside the flush"


def test_kill_inside_the_first_data_flush(windows: Windows, tmp_path: Path) -> None:
    """Every other write of the first data flush (every write with -m slow): nothing or FIRST points."""
    _sweep(windows.first[::2], (0, FIRST), tmp_path)


def test_kill_inside_a_later_flush(windows: Windows, tmp_path: Path) -> None:
    """Every other write of a later flush: FIRST or FIRST + SECOND points."""
    _sweep(windows.later[::2], (FIRST, FIRST + SECOND), tmp_path)


@pytest.mark.slow
def test_kill_at_every_write_of_both_flushes(windows: Windows, tmp_path: Path) -> None:
    _sweep(windows.first, (0, FIRST), tmp_path)
    _sweep(windows.later, (FIRST, FIRST + SECOND), tmp_path)
