"""Harness of the fault-injection suite: real jobs, real signals, no process left behind.

Every job a test launches carries a unique token in its environment
(``YPROV4ML_FAULTS_JOB``).  MPICH's hydra puts each rank in its own session (``setsid``), so
killing mpiexec's process group is not enough: :class:`Job` kills the group *and* every
process that carries its token, and the autouse fixture ``_no_leftover_processes``
(conftest.py) fails the test if any such process is still alive afterwards.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import uuid
import warnings
import zlib
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import psutil
import pytest

SCRIPTS = Path(__file__).with_name("scripts")
TOKEN_VAR = "YPROV4ML_FAULTS_JOB"
SEED_VAR = "YPROV4ML_FAULTS_SEED"
JOB_TIMEOUT_S = 90.0
UNTRUSTED_MEMORY_LIMIT = 4 << 30  # address space of a process reading untrusted files
MEMORY_LIMIT_VAR = "YPROV4ML_FAULTS_MEMORY_LIMIT"  # read by scripts/read_untrusted.py
_LAUNCHER_VARS = (
    "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "PMI_RANK", "PMI_SIZE", "PMIX_RANK",
    "MPI_LOCALRANKID", "MPI_LOCALNRANKS", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_JOB_ID",
    "SLURM_STEP_ID", "SLURM_LOCALID", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE",
    "TORCHELASTIC_RUN_ID", "YPROV4ML_HPC_SAVE_DIR",
)

live_tokens: list[str] = []  # tokens of jobs started by the current test

# One seed per session (printed in pytest's header); a case mixes in its name.
SESSION_SEED = int(os.environ.get(SEED_VAR) or random.SystemRandom().randrange(1, 2**31))


def seed_for(name: str) -> int:
    """A seed for one case: the session seed mixed with the case's name."""
    return (SESSION_SEED * 1_000_003 + zlib.crc32(name.encode())) % 2**31


# --- processes -------------------------------------------------------------------------------
def mpiexec_path() -> str:
    candidate = Path(sysconfig.get_path("scripts")) / "mpiexec"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("mpiexec")
    if found is None:
        pytest.skip("mpiexec not found (pip install mpich mpi4py)")
    return found


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without launcher variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in _LAUNCHER_VARS and k != TOKEN_VAR}
    env["YPROV4ML_HPC_CARBON"] = "0"  # codecarbon's 1.3 s start measures nothing useful here
    env.update(extra)
    return env


def processes_with_token(token: str) -> list[psutil.Process]:
    """Live (non-zombie) processes whose environment carries ``token``."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if proc.environ().get(TOKEN_VAR) == token:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
            continue
    return found


def kill_token(token: str, timeout: float = 15.0) -> list[int]:
    """SIGKILL every process carrying ``token`` until none is left; return the pids killed."""
    killed: list[int] = []
    deadline = time.monotonic() + timeout
    while True:
        left = processes_with_token(token)
        if not left:
            return killed
        if time.monotonic() > deadline:
            raise AssertionError(f"processes survive SIGKILL: {[p.pid for p in left]}")
        for proc in left:
            try:
                proc.kill()
                killed.append(proc.pid)
            except psutil.NoSuchProcess:
                pass
        time.sleep(0.05)


class Job:
    """One launched job (mpiexec or a set of srun-like processes) and its control directory.

    Use as a context manager: leaving it kills everything the job started, whatever happened.
    """

    def __init__(self, workdir: Path, name: str = "job") -> None:
        self.token = uuid.uuid4().hex
        self.ctl = workdir / f"{name}_ctl"
        self.save = workdir / f"{name}_save"
        self.logs = workdir / f"{name}_logs"
        for folder in (self.ctl, self.save, self.logs):
            folder.mkdir(parents=True, exist_ok=True)
        self.procs: list[subprocess.Popen[bytes]] = []
        live_tokens.append(self.token)

    # launching ----------------------------------------------------------------------------------
    def _popen(self, argv: Sequence[str], env: dict[str, str], tag: str) -> subprocess.Popen[bytes]:
        env = {**env, TOKEN_VAR: self.token}
        out = (self.logs / f"{tag}.out").open("wb")
        err = (self.logs / f"{tag}.err").open("wb")
        try:
            proc = subprocess.Popen(
                list(argv), env=env, stdout=out, stderr=err, start_new_session=True, cwd=self.ctl
            )
        finally:
            out.close()
            err.close()
        self.procs.append(proc)
        return proc

    def mpiexec(self, n: int, script: str, *args: str, mpi_flags: Sequence[str] = ()) -> Job:
        argv = [mpiexec_path(), "-n", str(n), *mpi_flags, sys.executable, str(SCRIPTS / script), *args]
        self._popen(argv, clean_env(), "mpiexec")
        return self

    def srun_like(self, n: int, script: str, *args: str, job_id: str = "4242") -> Job:
        """N processes with Slurm's variables and no MPI: what ``srun`` starts for a non-MPI job."""
        for rank in range(n):
            env = clean_env(
                SLURM_PROCID=str(rank), SLURM_NTASKS=str(n), SLURM_LOCALID=str(rank),
                SLURM_JOB_ID=job_id, SLURM_STEP_ID="0",
            )
            self._popen([sys.executable, str(SCRIPTS / script), *args], env, f"task{rank}")
        return self

    # control files ------------------------------------------------------------------------------
    def wait_files(self, prefix: str, n: int, timeout: float = JOB_TIMEOUT_S) -> dict[int, str]:
        """Wait until ``prefix_<rank>`` exists for ranks 0..n-1; return their contents."""
        deadline = time.monotonic() + timeout
        while True:
            found = {}
            for rank in range(n):
                path = self.ctl / f"{prefix}_{rank}"
                if path.exists():
                    found[rank] = path.read_text()
            if len(found) == n:
                return found
            if any(p.poll() is not None for p in self.procs):
                self.fail(f"a process exited before writing {prefix}_* (have {sorted(found)})")
            if time.monotonic() > deadline:
                self.fail(f"timed out waiting for {prefix}_* (have {sorted(found)})")
            time.sleep(0.02)

    def read_ints(self, prefix: str, n: int) -> dict[int, int]:
        out = {}
        for rank in range(n):
            path = self.ctl / f"{prefix}_{rank}"
            out[rank] = int(path.read_text()) if path.exists() else 0
        return out

    def pids(self, n: int) -> dict[int, int]:
        return {rank: int(text) for rank, text in self.wait_files("pid", n).items()}

    @property
    def run_dir(self) -> Path:
        return Path((self.ctl / "run_dir").read_text())

    # ending -------------------------------------------------------------------------------------
    def wait(self, timeout: float = JOB_TIMEOUT_S) -> list[int | None]:
        """Wait for every launched process; on timeout kill everything and fail."""
        deadline = time.monotonic() + timeout
        codes: list[int | None] = []
        for proc in self.procs:
            try:
                codes.append(proc.wait(timeout=max(deadline - time.monotonic(), 0.1)))
            except subprocess.TimeoutExpired:
                self.fail(f"job did not end within {timeout} s")
        return codes

    def kill_all(self) -> None:
        """SIGKILL the launcher's process group and every process with the job's token."""
        for proc in self.procs:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        kill_token(self.token)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass

    def logs_text(self) -> str:
        parts = []
        for path in sorted(self.logs.iterdir()):
            text = path.read_text(errors="replace")[-3000:]
            if text.strip():
                parts.append(f"--- {path.name} ---\n{text}")
        return "\n".join(parts)

    def fail(self, message: str) -> None:
        self.kill_all()
        raise AssertionError(f"{message}\n{self.logs_text()}")

    def __enter__(self) -> Job:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill_all()


def attach_strace(pid: int, *strace_args: str) -> subprocess.Popen[str]:
    """Start ``strace -qq -p PID ARGS`` and return once it traces ``pid`` (RuntimeError if it
    cannot within 30 s: no ptrace here, or strace missing)."""
    strace = shutil.which("strace")
    if strace is None:
        raise RuntimeError("strace is not installed (apt-get install strace)")
    tracer = subprocess.Popen([strace, "-qq", "-p", str(pid), *strace_args],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while _tracer_pid(pid) == 0:
        if time.monotonic() > deadline or tracer.poll() is not None:
            tracer.kill()
            _, err = tracer.communicate()
            raise RuntimeError(f"strace did not attach: {err}")
        time.sleep(0.01)
    return tracer


def _tracer_pid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("TracerPid:"):
            return int(line.split()[1])
    return 0


def signal_pids(pids: Sequence[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


# --- the CLI ---------------------------------------------------------------------------------
def cli(
    *args: str, isolate: bool = False, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """``yprov4ml-hpc ARGS``: in this process (fast; an uncaught exception propagates, which is
    what a traceback would be), or with ``isolate=True`` in a fresh process in its own session,
    killed after ``timeout`` (for inputs that might crash or hang the HDF5 library)."""
    if not isolate:
        from yprov4ml_hpc._cli import main

        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse errors and --help
                code = exc.code if isinstance(exc.code, int) else 2
        return subprocess.CompletedProcess(["yprov4ml-hpc", *args], code, out.getvalue(), err.getvalue())
    token = uuid.uuid4().hex
    proc = subprocess.Popen(
        [sys.executable, "-m", "yprov4ml_hpc", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**clean_env(), TOKEN_VAR: token}, start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_token(token)
        out, err = proc.communicate()
        raise AssertionError(f"yprov4ml-hpc {' '.join(args)} hung for {timeout} s\n{err[-3000:]}") from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@cache
def _has_command(name: str) -> bool:
    from yprov4ml_hpc._cli import COMMANDS

    return name in COMMANDS


def require_command(name: str) -> None:
    """Skip until the ``yprov4ml-hpc NAME`` subcommand exists (merge/report land in other issues)."""
    if not _has_command(name):
        pytest.skip(f"`yprov4ml-hpc {name}` does not exist yet (`yprov4ml-hpc {name} --help` fails)")


def merge(run_dir: Path, *extra: str) -> dict[str, Any]:
    """``yprov4ml-hpc merge RUN_DIR``: check exit 0 and no traceback; return summary.json with the
    command's output under the key ``"_output"``."""
    require_command("merge")
    proc = cli("merge", str(run_dir), *extra)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 0, f"merge failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    out_dir = Path(extra[extra.index("-o") + 1]) if "-o" in extra else run_dir
    summary = json.loads((out_dir / "summary.json").read_text())
    documents = list(out_dir.glob("prov_*.json"))
    assert len(documents) == 1, documents
    summary["_output"] = proc.stdout + proc.stderr
    return dict(summary)


def merged_statuses(summary: dict[str, Any]) -> dict[int, str]:
    return {int(r["rank"]): str(r["status"]) for r in summary["ranks"]}


# --- file trees ------------------------------------------------------------------------------
def tree_snapshot(root: Path, exclude: Path | None = None) -> dict[str, tuple[str, int, int]]:
    """``{relative path: (kind, size, mtime_ns)}`` of everything under ``root`` (links not followed)."""
    snapshot: dict[str, tuple[str, int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        if exclude is not None and (base == exclude or exclude in base.parents):
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            path = base / name
            if exclude is not None and path == exclude:
                continue
            st = path.lstat()
            kind = "link" if path.is_symlink() else "dir" if path.is_dir() else "file"
            snapshot[path.relative_to(root).as_posix()] = (
                kind, st.st_size if kind == "file" else 0, st.st_mtime_ns if kind == "file" else 0
            )
    return snapshot


def tree_changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    changed = [f"+ {p}" for p in sorted(set(after) - set(before))]
    changed += [f"- {p}" for p in sorted(set(before) - set(after))]
    changed += [f"~ {p}" for p in sorted(set(before) & set(after)) if before[p] != after[p]]
    return changed


# --- runs built in this process ----------------------------------------------------------------
def build_run(save_dir: Path, ranks: int, points: int = 300, run_id: str = "built") -> Path:
    """A finished ``ranks``-rank run, written in this process (rank files via ``rank=``/WORLD_SIZE).

    Rank r logs "loss"/"training" = r * 1e6 + step * 0.5 and "acc"/"validation" =
    -(r * 1e6 + step) for ``points`` steps, and param ``rank`` = r.  Ranks end in reverse order
    so that rank 0's finalize finds every other file closed.
    """
    import yprov4ml_hpc as prov4ml

    saved = {k: os.environ.get(k) for k in ("WORLD_SIZE", "YPROV4ML_HPC_CARBON")}
    os.environ["WORLD_SIZE"] = str(ranks)
    os.environ["YPROV4ML_HPC_CARBON"] = "0"
    try:
        run_dir = None
        for rank in reversed(range(ranks)):
            run = prov4ml.start_run(
                "built", provenance_save_dir=save_dir, rank=rank, run_id=run_id,
                flush_interval_s=0, system_metrics_interval_s=0, install_signal_handlers=False,
                finalize_timeout_s=0.0 if rank else 30.0,
            )
            for step in range(points):
                prov4ml.log_metric("loss", rank * 1e6 + step * 0.5, context="training", step=step)
                prov4ml.log_metric("acc", -(rank * 1e6 + step), context="validation", step=step)
            prov4ml.log_param("rank", rank)
            run_dir = run.run_dir
            prov4ml.end_run()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    assert run_dir is not None
    return run_dir


# --- reading untrusted run directories under a watchdog -----------------------------------------
def read_untrusted(dirs: Sequence[Path], workdir: Path, item_timeout: float = 20.0) -> list[dict[str, Any]]:
    """Read each run directory in a child process (scripts/read_untrusted.py) under a watchdog.

    Returns one record per directory (see that script); a directory whose reading killed the
    child gets ``"crash"`` (with the exit status), one that made it hang ``"hang"``, in every
    field, and reading resumes with the next directory.
    """
    import queue
    import threading

    listing = workdir / "untrusted_dirs.json"
    listing.write_text(json.dumps([str(d) for d in dirs]))
    results: dict[int, dict[str, Any]] = {}
    start = 0
    while start < len(dirs):
        token = uuid.uuid4().hex
        proc = subprocess.Popen(
            [sys.executable, str(SCRIPTS / "read_untrusted.py"), str(listing), str(start),
             str(workdir / "merged")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            # A claimed size (world_size=10**12, ...) must not be able to exhaust the machine.
            env={**clean_env(), TOKEN_VAR: token, MEMORY_LIMIT_VAR: str(UNTRUSTED_MEMORY_LIMIT)},
            start_new_session=True,
        )
        lines: queue.Queue[str | None] = queue.Queue()
        assert proc.stdout is not None

        def pump(stream: Any = proc.stdout, sink: queue.Queue[str | None] = lines) -> None:
            for line in stream:
                sink.put(line)
            sink.put(None)

        threading.Thread(target=pump, daemon=True).start()
        current = start
        verdict = None
        while True:
            try:
                line = lines.get(timeout=item_timeout)
            except queue.Empty:
                verdict = "hang"
                break
            if line is None:
                verdict = "crash"
                break
            if line.startswith("START "):
                current = int(line.split()[1])
            elif line.startswith("{"):
                record = json.loads(line)
                results[record["i"]] = record
                if record["i"] == len(dirs) - 1:
                    break
        kill_token(token)
        proc.wait(timeout=15)
        stderr = proc.stderr.read() if proc.stderr is not None else ""
        if verdict is not None and current not in results:
            results[current] = {
                "i": current, "reader": verdict, "merge": verdict, "info": verdict, "problems": [],
                "detail": {"returncode": proc.returncode, "stderr": stderr[-2000:]},
            }
        start = max(results, default=start - 1) + 1 if results else start + 1
    return [results[i] for i in range(len(dirs))]


def cli_many(
    commands: Sequence[Sequence[str]], workdir: Path, timeout: float = 300.0
) -> list[dict[str, Any]]:
    """Run several CLI commands in one fresh process (scripts/cli_many.py), killed on timeout."""
    listing = workdir / f"commands_{uuid.uuid4().hex[:8]}.json"
    listing.write_text(json.dumps([list(c) for c in commands]))
    token = uuid.uuid4().hex
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPTS / "cli_many.py"), str(listing)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**clean_env(), TOKEN_VAR: token}, start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_token(token)
        out, err = proc.communicate()
        raise AssertionError(f"CLI commands hung for {timeout} s\n{out[-2000:]}\n{err[-2000:]}") from None
    results = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert proc.returncode == 0 and len(results) == len(commands), (proc.returncode, err[-3000:])
    return results
