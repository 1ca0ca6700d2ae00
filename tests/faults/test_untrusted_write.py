"""A crafted run directory cannot make a command write outside its output directory.

The commands that write (merge, graph, report, plot, export) write into the run directory by
default and into ``-o OUT`` when asked.  Whoever crafted the run directory controls every name
the commands read (experiment, run id, metric and context names, artifact paths) and every
entry of the directory itself (a ``summary.json`` or ``plots`` that is a symlink elsewhere).

What may be lost: nothing outside the output directory; the snapshot of everything else
(size, mtime, new or removed entries) is the same before and after.  A command may refuse a
crafted run with a one-line error (exit 2).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from crafting import append_record, copy_run, on_file, set_attr
from faults_harness import build_run, cli, require_command, tree_changes, tree_snapshot

WRITERS: dict[str, list[str]] = {
    "merge": ["merge", "{run}", "--graph", "--consolidate"],
    "graph": ["graph", "{run}"],
    "report": ["report", "{run}", "--no-figures"],
    "report_figures": ["report", "{run}"],
    "plot": ["plot", "{run}"],
    "export_metrics_json": ["export", "-f", "metrics-json", "{run}"],
    "export_csv": ["export", "-f", "csv", "{run}"],
    "export_provn": ["export", "-f", "provn", "{run}"],
}
OUTPUT_OPTION = {  # where -o points for each writer (a file for report/export-json, else a folder)
    "merge": "{out}", "graph": "{out}", "report": "{out}/r.html", "report_figures": "{out}/r.html",
    "plot": "{out}", "export_metrics_json": "{out}/m.json", "export_csv": "{out}/csv",
    "export_provn": "{out}/doc.provn",
}
SECRET = "VICTIM-SECRET-0xC0FFEE"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_dir = build_run(tmp_path_factory.mktemp("pristine"), 2, points=200)
    return run_dir


def _layout(tmp_path: Path, pristine: Path) -> tuple[Path, Path, Path]:
    """``tmp/a/b/c/<run>``, ``tmp/outside``, ``tmp/x/y/z/out``: run and output are deep enough
    that the crafted '../../../..' lands inside tmp, where the snapshot sees it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.txt").write_text(SECRET)
    run_dir = copy_run(pristine, tmp_path / "a" / "b" / "c" / pristine.name)
    out = tmp_path / "x" / "y" / "z" / "out"
    out.parent.mkdir(parents=True)
    return run_dir, outside, out


def _run(name: str, run_dir: Path, out: Path | None) -> None:
    require_command(WRITERS[name][0])
    args = [a.format(run=run_dir) for a in WRITERS[name]]
    if out is not None:
        args += ["-o", OUTPUT_OPTION[name].format(out=out)]
    proc = cli(*args)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode in (0, 2), (proc.returncode, proc.stderr)
    if proc.returncode == 2:
        assert len(proc.stderr.strip().splitlines()) <= 3, proc.stderr


def _merged(run_dir: Path) -> None:
    """Commands other than merge need the document and summary."""
    require_command("merge")
    proc = cli("merge", str(run_dir))
    assert proc.returncode == 0, proc.stderr


# --- output names that are symlinks ---------------------------------------------------------------
SYMLINKED_OUTPUTS = ["summary.json", "prov_built_built.json", "graph.dot", "consolidated.h5",
                     "report.html", "metrics.json", "prov_built_built.provn"]
SYMLINKED_FOLDERS = ["plots", "csv"]
F19 = ("BUG F19: a default output that already exists in the run directory as a symlink is written "
       "through (report.html, plots/, csv/ ...): a crafted run directory overwrites files elsewhere")


def _plant_symlinks(run_dir: Path, outside: Path) -> None:
    """Each default output that does not exist yet becomes a symlink to a victim elsewhere."""
    for name in SYMLINKED_OUTPUTS:
        if (run_dir / name).exists():
            continue  # an input of this command (the merge's document and summary)
        victim = outside / f"victim_{name}"
        victim.write_text(SECRET)
        (run_dir / name).symlink_to(victim)
    for name in SYMLINKED_FOLDERS:
        (outside / f"dir_{name}").mkdir()
        (run_dir / name).symlink_to(outside / f"dir_{name}", target_is_directory=True)


@pytest.mark.parametrize("name", list(WRITERS))
def test_symlinked_default_outputs_are_not_followed(tmp_path: Path, pristine: Path, name: str) -> None:
    """Default outputs planted as symlinks to files/folders elsewhere: nothing elsewhere changes."""
    run_dir, outside, _ = _layout(tmp_path, pristine)
    if name != "merge":
        _merged(run_dir)
    _plant_symlinks(run_dir, outside)
    before = tree_snapshot(tmp_path, exclude=run_dir)
    _run(name, run_dir, None)
    assert tree_changes(before, tree_snapshot(tmp_path, exclude=run_dir)) == []


# --- names that climb out ---------------------------------------------------------------------------
F20 = ("BUG F20: experiment/run_id from a rank file's attributes go unchecked into the document's file "
       "name (prov_<experiment>_<run_id>.json): '/../..' in them writes outside the output directory")


def _climbing_attrs(run_dir: Path) -> None:
    for rank in (0, 1):
        set_attr("experiment", "/../../../../escaped", rank)(run_dir)
        set_attr("run_id", "x", rank)(run_dir)
    (run_dir / "prov_").mkdir()  # lets 'prov_/../..' resolve


def test_climbing_experiment_name_default_output(tmp_path: Path, pristine: Path) -> None:
    """experiment = '/../../../../escaped' (and a 'prov_' folder planted): merge writes only
    inside the run directory."""
    run_dir, _, _ = _layout(tmp_path, pristine)
    _climbing_attrs(run_dir)
    before = tree_snapshot(tmp_path, exclude=run_dir)
    _run("merge", run_dir, None)
    assert tree_changes(before, tree_snapshot(tmp_path, exclude=run_dir)) == []


@pytest.mark.parametrize("name", ["merge", "graph"])
def test_climbing_experiment_name_with_output_dir(tmp_path: Path, pristine: Path, name: str) -> None:
    """...and with ``-o OUT`` (holding a 'prov_' folder) nothing outside OUT changes."""
    run_dir, _, out = _layout(tmp_path, pristine)
    _climbing_attrs(run_dir)
    (out / "prov_").mkdir(parents=True)
    before = tree_snapshot(tmp_path, exclude=out)
    _run(name, run_dir, out)
    assert tree_changes(before, tree_snapshot(tmp_path, exclude=out)) == []


def _climbing_series_and_artifacts(run_dir: Path, outside: Path) -> None:
    """Metric/context names and artifact records that point out of any folder."""
    names = {"metrics/training/loss": "../../../../outside/loss",
             "metrics/validation/acc": "/" + str(outside / "abs")}
    for path, name in names.items():
        on_file(lambda h, p=path, n=name: h[p].attrs.__setitem__("name", n))(run_dir)
    on_file(lambda h: h["metrics/training"].attrs.__setitem__("context", "../../.."))(run_dir)
    on_file(lambda h: h["metrics/training/loss"].attrs.__setitem__("context", "../../.."))(run_dir)
    for record in (
        '{"name": "../../../../outside/victim.txt", "path": "../../../../outside/victim.txt", '
        '"size": 1, "sha256": "0", "role": "output", "kind": "artifact"}',
        f'{{"name": "/etc/passwd", "path": "{outside / "victim.txt"}", "size": 1, "sha256": "0", '
        '"role": "input", "kind": "model"}',
    ):
        append_record("artifacts", record)(run_dir)


@pytest.mark.parametrize("name", list(WRITERS))
def test_climbing_names_with_output_dir(tmp_path: Path, pristine: Path, name: str) -> None:
    """Crafted metric/context names and artifact paths: nothing outside OUT changes."""
    run_dir, outside, out = _layout(tmp_path, pristine)
    _climbing_series_and_artifacts(run_dir, outside)
    if name != "merge":
        _merged(run_dir)
    before = tree_snapshot(tmp_path, exclude=out)
    _run(name, run_dir, out)
    assert tree_changes(before, tree_snapshot(tmp_path, exclude=out)) == []


@pytest.mark.parametrize("name", list(WRITERS))
def test_climbing_names_default_output(tmp_path: Path, pristine: Path, name: str) -> None:
    """...and with the default output nothing outside the run directory changes."""
    run_dir, outside, _ = _layout(tmp_path, pristine)
    _climbing_series_and_artifacts(run_dir, outside)
    if name != "merge":
        _merged(run_dir)
    before = tree_snapshot(tmp_path, exclude=run_dir)
    _run(name, run_dir, None)
    assert tree_changes(before, tree_snapshot(tmp_path, exclude=run_dir)) == []


def test_report_does_not_embed_files_named_by_artifact_records(tmp_path: Path, pristine: Path) -> None:
    """Artifact records naming files outside the run are listed, never read into the report."""
    run_dir, outside, out = _layout(tmp_path, pristine)
    _climbing_series_and_artifacts(run_dir, outside)
    _run("report", run_dir, out)
    assert SECRET not in (out / "r.html").read_text()
