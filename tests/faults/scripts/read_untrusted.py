"""Read untrusted run directories the way users and tools do, and say how each one went.

usage: read_untrusted.py LIST_JSON START OUT_ROOT

LIST_JSON holds a list of run directories; reading starts at index START.  For each one this
prints ``START i`` and then one JSON line:

  {"i": i, "reader": outcome, "merge": outcome, "info": outcome, "problems": [...], "detail": ...}

with outcome one of
  "ok"        read without complaint
  "reported"  the damage was reported: in ``problems`` by file name, or as a Yprov4mlError
              (merge/info: exit status 2 with a one-line message)
  "error"     anything else: an exception that would reach the user as a traceback

Run by the parent with a watchdog: a crash (signal) or a hang is noticed there, and reading
resumes after the guilty directory.  The merge writes into OUT_ROOT/<i>/, never the input.
``$YPROV4ML_FAULTS_MEMORY_LIMIT`` (bytes) caps the address space (RLIMIT_AS).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import sys
import traceback
import warnings
from pathlib import Path

if os.environ.get("YPROV4ML_FAULTS_MEMORY_LIMIT"):  # before anything big is imported
    _limit = int(os.environ["YPROV4ML_FAULTS_MEMORY_LIMIT"])
    resource.setrlimit(resource.RLIMIT_AS, (_limit, _limit))

import yprov4ml_hpc as prov4ml
from yprov4ml_hpc._cli import main as cli_main


def read_everything(run_dir: Path) -> tuple[str, list[str], str]:
    try:
        data = prov4ml.load_run(run_dir)
    except prov4ml.Yprov4mlError as exc:
        return "reported", [], f"{type(exc).__name__}: {exc}"
    except Exception:
        return "error", [], traceback.format_exc(limit=-4)
    problems = [name for name, _ in data.problems]
    try:
        _ = (data.run_id, data.experiment, data.world_size, data.missing_ranks, data.ranks)
        for info in data.ranks:
            data.params(info.rank)
            data.artifacts(info.rank)
            data.events(info.rank)
            data.meta(info.rank)
        data.artifacts()
        for metric, context, rank in data.series_keys():
            series = data.series(metric, context, rank)
            len(series)
    except prov4ml.Yprov4mlError as exc:
        return "reported", problems, f"{type(exc).__name__}: {exc}"
    except Exception:
        return "error", problems, traceback.format_exc(limit=-4)
    return ("reported" if problems else "ok"), problems, ""


def run_cli(args: list[str]) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli_main(args)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 2
    except Exception:
        return "error", traceback.format_exc(limit=-4)
    if code == 0:
        return "ok", ""
    message = err.getvalue().strip()
    if code == 2 and len(message.splitlines()) == 1:
        return "reported", message
    return "error", f"exit {code}: {message[-2000:]}"


def main() -> None:
    dirs = [Path(p) for p in json.loads(Path(sys.argv[1]).read_text())]
    start, out_root = int(sys.argv[2]), Path(sys.argv[3])
    warnings.simplefilter("ignore")
    for i in range(start, len(dirs)):
        print(f"START {i}", flush=True)
        reader, problems, detail = read_everything(dirs[i])
        merge, merge_detail = run_cli(["merge", str(dirs[i]), "-o", str(out_root / str(i))])
        info, info_detail = run_cli(["info", str(dirs[i])])
        print(json.dumps({
            "i": i, "reader": reader, "merge": merge, "info": info, "problems": problems,
            "detail": {"reader": detail, "merge": merge_detail, "info": info_detail},
        }), flush=True)


if __name__ == "__main__":
    main()
