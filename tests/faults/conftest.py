"""Fixtures of the fault-injection suite (the helpers live in faults_harness.py).

Randomness is seeded: one seed per session, printed in the header and with every failure;
``YPROV4ML_FAULTS_SEED=N`` replays a run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from faults_harness import SEED_VAR, SESSION_SEED, kill_token, live_tokens, processes_with_token, seed_for

HERE = Path(__file__).parent


def pytest_report_header() -> str:
    return f"fault-injection seed: {SESSION_SEED} (replay with {SEED_VAR}={SESSION_SEED})"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The ``slow`` cases of this folder run only when asked for (``-m slow``)."""
    if "slow" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with -m slow")
    for item in items:
        if "slow" in item.keywords and HERE in item.path.parents:
            item.add_marker(skip)


@pytest.fixture
def seed(request: pytest.FixtureRequest) -> int:
    """This test's seed, printed (pytest shows it with a failure)."""
    value = seed_for(request.node.nodeid)
    print(f"\n[{request.node.name}] seed {value} (session seed {SESSION_SEED}; {SEED_VAR} replays)")
    return value


@pytest.fixture(autouse=True)
def _no_codecarbon(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YPROV4ML_HPC_CARBON", "0")


@pytest.fixture(autouse=True)
def _no_leftover_processes() -> Iterator[None]:
    """Fail a test that leaves any process of its jobs running (and kill those processes)."""
    start = len(live_tokens)
    yield
    tokens = live_tokens[start:]
    del live_tokens[start:]
    leftovers = {t: [p.pid for p in processes_with_token(t)] for t in tokens}
    leftovers = {t: pids for t, pids in leftovers.items() if pids}
    for token in leftovers:
        kill_token(token)
    assert not leftovers, f"processes left running after the test: {leftovers}"
