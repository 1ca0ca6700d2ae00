"""`import yprov4ml_hpc` must stay light: no MPI init, no NVML, no plotting, no PROV stack."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = (
    "mpi4py",
    "mpi4py.MPI",
    "pynvml",
    "codecarbon",
    "matplotlib",
    "prov",
    "networkx",
    "torch",
    "pandas",
    "rocrate",
    "lightning",
    "itwinai",
)


def test_import_loads_no_heavy_optional_module() -> None:
    code = f"import sys, json, yprov4ml_hpc;print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_cli_help_needs_no_mpi() -> None:
    code = (
        "import sys, json\n"
        "from yprov4ml_hpc._cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(json.dumps('mpi4py.MPI' in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) is False
