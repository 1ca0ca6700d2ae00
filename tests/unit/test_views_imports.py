"""Import hygiene of the views: the CLI and the package stay light until a feature is used."""

from __future__ import annotations

import json
import subprocess
import sys

from _runfactory import shared_run

HEAVY = ("matplotlib", "lightning", "pytorch_lightning", "torch", "networkx", "prov", "mpi4py", "mpi4py.MPI")


def _loaded(code: str) -> list[str]:
    probe = f"{code}\nimport sys, json\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_package_integrations_and_cli_parser_import_nothing_heavy() -> None:
    code = (
        "import yprov4ml_hpc, yprov4ml_hpc.integrations, yprov4ml_hpc._progress\n"
        "from yprov4ml_hpc._cli import build_parser\nbuild_parser()"
    )
    assert _loaded(code) == []


def test_summary_of_a_merged_run_needs_no_plotting_nor_graph_library() -> None:
    code = (
        "import contextlib, io\nfrom yprov4ml_hpc._cli import main\n"
        f"with contextlib.redirect_stdout(io.StringIO()):\n    main(['summary', {str(shared_run('one'))!r}])"
    )
    assert _loaded(code) == []
