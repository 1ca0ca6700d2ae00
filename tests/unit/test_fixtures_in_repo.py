"""Nothing under tests/ reads outside the repository: the NVML traces are copies in
tests/fixtures/nvml (of the project's shared fixtures folder beside the checkout), so a plain
clone runs every test."""

from __future__ import annotations

import json
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
NVML = TESTS / "fixtures" / "nvml"
# Spelled in pieces so that this guard does not match itself (nor the pre-stop checklist's grep).
_SHARED = "sha" + "red"
_NEEDLES = (f'"{_SHARED}" / "fixtures"', f"{_SHARED}/fixtures", f"../{_SHARED}")


def test_the_traces_are_in_the_repository() -> None:
    for name in ("h100_trace.json", "h200_trace.json"):
        trace = json.loads((NVML / name).read_text())
        assert len(trace["samples"]) > 100 and trace["meta"], name
    assert (NVML / "README.md").is_file()


def test_no_test_reads_the_shared_folder() -> None:
    offenders = []
    for path in [*TESTS.rglob("*.py"), *TESTS.rglob("*.sh")]:
        text = path.read_text(encoding="utf-8")
        if any(needle in text for needle in _NEEDLES):
            offenders.append(str(path.relative_to(TESTS)))
    assert offenders == []
