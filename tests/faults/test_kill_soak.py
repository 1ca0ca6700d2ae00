"""Random SIGKILLs of a logging rank (soak): every kill leaves a journal that reads back.

Each round forks a fresh rank from one process (scripts/kill_soak.py), lets it log three
series and params with buffer sizes 1-4096 and the flush timer on, SIGKILLs it after a random
0-300 ms, and reads it: readable, every series an exact prefix of what was logged and at
least what was reported flushed.  25 kills in CI, 500 with ``-m slow``; 0 failures allowed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from faults_harness import SCRIPTS, clean_env


def _soak(tmp_path: Path, kills: int, seed: int) -> None:
    command = [sys.executable, str(SCRIPTS / "kill_soak.py"), str(tmp_path), str(kills), str(seed)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=60 + 2 * kills, env=clean_env(),
                          check=False)
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    assert lines[-1] == {"kills": kills, "failures": 0}, lines[:20]


def test_random_kills_small(tmp_path: Path, seed: int) -> None:
    _soak(tmp_path, 25, seed)


@pytest.mark.slow
def test_random_kills_soak(tmp_path: Path, seed: int) -> None:
    _soak(tmp_path, 500, seed)
