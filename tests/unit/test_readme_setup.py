"""The README's set-up command installs what the quickstart then tells the user to run, and
CI (.ci/run) installs at least as much as the README does."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# What each command the quickstart's closing hint names needs beyond the core dependencies.
HINT_NEEDS = {"report": {"plot"}, "plot": {"plot"}, "summary": set()}


def _extras(text: str) -> set[str]:
    match = re.search(r'pip install (?:-q )?-e "\.\[([a-z,]+)\]"', text)
    assert match, "no editable install with extras found"
    return set(match.group(1).split(","))


def test_first_command_installs_what_the_quickstart_hint_needs() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    first_block = readme.split("```bash", 1)[1].split("```", 1)[0]
    installed = _extras(first_block)
    quickstart = (REPO / "examples" / "quickstart_mpi.py").read_text(encoding="utf-8")
    hinted = set(re.findall(r"yprov4ml-hpc (\w+) \{run_dir\}", quickstart))
    assert hinted >= {"report"}, hinted  # the hint this test is about is still there
    needed = set().union(*(HINT_NEEDS[command] for command in hinted))
    assert needed <= installed, f"README installs {installed}; the quickstart's hint needs {needed}"
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(dep.startswith("matplotlib") for dep in extras["plot"])


def test_ci_installs_at_least_what_the_readme_installs() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert _extras(readme.split("```bash", 1)[1]) <= _extras(ci)
    assert "bash tests/run_all.sh" in readme and "bash tests/run_all.sh" in ci
