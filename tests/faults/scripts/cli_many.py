"""Run several ``yprov4ml-hpc`` commands in one process (startup paid once).

usage: cli_many.py COMMANDS_JSON
COMMANDS_JSON holds a list of argument lists.  Prints one JSON line per command:
{"args": [...], "code": exit status or null, "error": traceback text of an uncaught exception}.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import traceback
import warnings
from pathlib import Path

from yprov4ml_hpc._cli import main as cli_main


def main() -> None:
    warnings.simplefilter("ignore")
    for args in json.loads(Path(sys.argv[1]).read_text()):
        out, err = io.StringIO(), io.StringIO()
        code, error = None, ""
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = cli_main(args)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
        except Exception:
            error = traceback.format_exc(limit=-4)
        print(json.dumps({"args": args, "code": code, "error": error, "stderr": err.getvalue()[-1000:]}),
              flush=True)


if __name__ == "__main__":
    main()
