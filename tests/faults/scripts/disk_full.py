"""Disk-full subject: run under RLIMIT_FSIZE (SIGXFSZ ignored, so write() fails with EFBIG).

usage: disk_full.py LIMIT_BYTES SAVE_DIR MODE [ARTIFACT]

The limit is set first thing, before the library is imported.

Prints one JSON object per line on stdout (a pipe: the file-size limit does not apply):
  {"run_dir": ...}                       once the run exists
  {"flushed": N}                         after every successful flush (N points per series)
  {"error": "flush"|"start"|..., "type": ..., "message": ..., "builtins": [...]}
  {"end_run": "ok"} or {"end_run": "error", "type": ..., "message": ...}
  {"exit": "clean"}                      as the last thing before a normal exit

MODE ``flush``: log batches of 1000 points of two series and flush each, until a flush fails.
MODE ``start``: start_run only (the limit is too small for even the new rank file).
MODE ``artifact``: log one artifact (ARTIFACT, larger than the limit) after a small flush.
MODE ``train``: log 100,000 steps of two series with log_metric only (max_buffer_mb=1), never
  calling flush: logging must not raise; prints {"logged": N, "warnings": [...]}.
MODE ``recover``: like ``train`` with 30,000 steps and the default memory bound, then raise
  the (soft) limit as if space had been freed: end_run writes everything.
"""

from __future__ import annotations

import json
import resource
import signal
import sys

if __name__ == "__main__":
    # What a full disk looks like to write(): EFBIG here, ENOSPC there; both an OSError.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    _limit = int(sys.argv[1])
    _hard = resource.RLIM_INFINITY if sys.argv[3] == "recover" else _limit
    resource.setrlimit(resource.RLIMIT_FSIZE, (_limit, _hard))

import yprov4ml_hpc as prov4ml


def say(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


def describe(where: str, exc: BaseException) -> None:
    builtins = [c.__name__ for c in type(exc).__mro__ if c.__module__ == "builtins"]
    say(error=where, type=type(exc).__name__, message=str(exc), builtins=builtins,
        yprov4ml=isinstance(exc, prov4ml.Yprov4mlError))


def train(steps: int, recover: bool) -> None:
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        logged = 0
        try:
            for step in range(steps):
                prov4ml.log_metric("loss", step * 0.5, context="training", step=step)
                prov4ml.log_metric("acc", -float(step), context="validation", step=step)
                logged = step + 1
        except Exception as exc:
            describe("log_metric", exc)
        if recover:
            unlimited = (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
            resource.setrlimit(resource.RLIMIT_FSIZE, unlimited)
            # Room comes back for every process, as on a real disk: the writer process too.
            writer = getattr(prov4ml.active_run()._writer, "_proc", None)
            if writer is not None:
                resource.prlimit(writer.pid, resource.RLIMIT_FSIZE, unlimited)
        try:
            prov4ml.end_run()
            say(end_run="ok")
        except Exception as exc:
            say(end_run="error", type=type(exc).__name__, message=str(exc),
                yprov4ml=isinstance(exc, prov4ml.Yprov4mlError))
    say(logged=logged, warnings=[str(w.message) for w in caught if "journal" in str(w.message)])
    say(exit="clean")


def main() -> None:
    save_dir, mode = sys.argv[2], sys.argv[3]
    try:
        run = prov4ml.start_run(
            "full", provenance_save_dir=save_dir, buffer_size=4096, flush_interval_s=0,
            max_buffer_mb=1 if mode == "train" else 256,
        )
    except Exception as exc:
        describe("start", exc)
        say(exit="clean")
        return
    say(run_dir=str(run.run_dir))
    prov4ml.log_param("lr", 0.001)
    if mode in ("train", "recover"):
        train(100_000 if mode == "train" else 30_000, recover=mode == "recover")
        return
    flushed = 0
    try:
        if mode == "artifact":
            for step in range(100):
                prov4ml.log_metric("loss", step * 0.5, context="training", step=step)
            run.flush()
            say(flushed=100)
            try:
                prov4ml.log_artifact("big.bin", sys.argv[4])
            except Exception as exc:
                describe("artifact", exc)
        else:
            while flushed < 10_000_000:
                for step in range(flushed, flushed + 1000):
                    prov4ml.log_metric("loss", step * 0.5, context="training", step=step)
                    prov4ml.log_metric("acc", -float(step), context="validation", step=step)
                run.flush()
                flushed += 1000
                say(flushed=flushed)
    except Exception as exc:
        describe("flush", exc)
    try:
        prov4ml.end_run()
        say(end_run="ok")
    except Exception as exc:
        say(end_run="error", type=type(exc).__name__, message=str(exc),
            yprov4ml=isinstance(exc, prov4ml.Yprov4mlError))
    say(exit="clean")


if __name__ == "__main__":
    main()
