"""Every bad argument raises a Yprov4mlError subclass that is also the matching builtin, and the
command line turns only those (and OS errors) into one-line errors: a KeyError of ours is a bug
and keeps its traceback."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _merge_kit import make_run

import yprov4ml_hpc as prov4ml
from yprov4ml_hpc import _cli

BAD_CALLS: list[tuple[str, Callable[[], Any], type[Exception]]] = [
    ("metric value str", lambda: prov4ml.log_metric("loss", "high"), TypeError),
    ("metric value list", lambda: prov4ml.log_metric("loss", [1.0, 2.0]), TypeError),
    ("step float", lambda: prov4ml.log_metric("loss", 1.0, step=1.5), TypeError),
    ("step too big", lambda: prov4ml.log_metric("loss", 1.0, step=2**64), ValueError),
    ("timestamp bool", lambda: prov4ml.log_metric("loss", 1.0, timestamp=True), TypeError),
    ("metric name int", lambda: prov4ml.log_metric(3, 1.0), TypeError),  # type: ignore[arg-type]
    ("metric name empty", lambda: prov4ml.log_metric("", 1.0), ValueError),
    ("metric name NUL", lambda: prov4ml.log_metric("a\0b", 1.0), ValueError),
    ("context int", lambda: prov4ml.log_metric("loss", 1.0, context=3), TypeError),
    ("context empty", lambda: prov4ml.log_metric("loss", 1.0, context=""), ValueError),
    ("log_metrics list", lambda: prov4ml.log_metrics([("a", 1.0)]), TypeError),  # type: ignore[arg-type]
    ("log_metrics value", lambda: prov4ml.log_metrics({"a": "x"}), TypeError),
    ("log_params list", lambda: prov4ml.log_params([("a", 1)]), TypeError),  # type: ignore[arg-type]
    ("param name empty", lambda: prov4ml.log_param("", 1), ValueError),
    ("end prov_detail", lambda: prov4ml.end_run(prov_detail="all"), ValueError),
    ("end timeout", lambda: prov4ml.end_run(finalize_timeout_s=-1), ValueError),
    ("end status", lambda: prov4ml.active_run().end("weird"), ValueError),  # type: ignore[union-attr]
]


@pytest.mark.parametrize(("what", "call", "builtin"), BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_bad_arguments_raise_both_kinds(
    tmp_path: Path, what: str, call: Callable[[], Any], builtin: type[Exception]
) -> None:
    run = prov4ml.start_run("bad", provenance_save_dir=tmp_path, system_metrics_interval_s=0)
    with pytest.raises(builtin) as caught:
        call()
    assert isinstance(caught.value, prov4ml.Yprov4mlError), (what, type(caught.value).__mro__)
    assert not run.ended  # a refused argument ends nothing
    prov4ml.end_run()


def test_a_missing_series_is_a_keyerror_and_ours(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made = make_run(tmp_path, monkeypatch, world_size=1)
    with pytest.raises(KeyError) as caught:
        prov4ml.load_run(made.run_dir).series("nope", "training", 0)
    assert isinstance(caught.value, prov4ml.SeriesNotFoundError)
    assert str(caught.value).startswith("no series 'nope'")  # not KeyError's quoted repr


def _command(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    def broken(args: argparse.Namespace) -> int:
        raise error

    parser = _cli.build_parser()
    monkeypatch.setattr(_cli, "build_parser", lambda: parser)
    info = parser._subparsers._group_actions[0].choices["info"]  # type: ignore[union-attr]
    info.set_defaults(_run=broken)


def test_cli_user_errors_are_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _command(monkeypatch, prov4ml.SeriesNotFoundError("no series 'x'"))
    assert _cli.main(["info", "somewhere"]) == 2
    assert capsys.readouterr().err.strip() == "yprov4ml-hpc info: error: no series 'x'"


def test_cli_keeps_the_traceback_of_an_internal_keyerror(monkeypatch: pytest.MonkeyPatch) -> None:
    _command(monkeypatch, KeyError("stats"))
    with pytest.raises(KeyError, match="stats"):
        _cli.main(["info", "somewhere"])


def test_no_bare_builtin_errors_for_bad_arguments() -> None:
    """Every ``raise TypeError(...)``/``raise ValueError(...)`` in the package is one of ours
    (ConfigTypeError/ConfigError, also the builtins), so ``except Yprov4mlError`` catches every
    bad argument, the yProv4ML compatibility layer's too.  Internal consistency checks that a
    user cannot reach are listed here by file."""
    import ast

    package = Path(prov4ml.__file__).parent
    internal = {"_merge/_graph.py"}  # build_graph(aggregates=...) misuse: a programming error
    offenders = []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Raise)
                and isinstance(node.exc, ast.Call)
                and isinstance(node.exc.func, ast.Name)
                and node.exc.func.id in ("TypeError", "ValueError")
                and relative not in internal
            ):
                offenders.append(f"{relative}:{node.lineno}")
    assert offenders == []
