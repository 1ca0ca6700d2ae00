"""`yprov4ml-hpc report`: one self-contained HTML file; graph.svg embedded or a drawn fallback."""

from __future__ import annotations

import base64
import os
import re
import shutil
from pathlib import Path

import pytest
from _runfactory import assert_user_error, cli, shared_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _report(run_dir: Path, out: Path, *args: str, env: dict[str, str] | None = None) -> str:
    proc = cli("report", str(run_dir), "-o", str(out), *args, env=env)
    assert proc.returncode == 0, proc.stderr
    path = out / "report.html" if out.is_dir() else out
    assert str(path) in proc.stdout
    return path.read_text(encoding="utf-8")


def _assert_self_contained(html: str) -> None:
    # Nothing to fetch: no external src/href, images are data: URIs (xmlns is a name, not a fetch).
    assert not re.search(r'(src|href)="(?!data:|#)', html)
    assert "<link" not in html and "<script" not in html
    assert "default-src 'none'" in html


def test_report_of_an_eight_rank_run(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    html = _report(shared_run("eight"), tmp_path)  # -o a folder: report.html inside
    _assert_self_contained(html)
    table = html.split('id="rank-table"')[1].split("</table>")[0]
    assert table.count("<tr>") == 9  # header + 8 ranks
    assert "straggler: median step interval" in table
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(images) == 6
    assert all(base64.b64decode(data)[:8] == PNG_MAGIC for data in images)
    for section in ("overview", "ranks", "params", "metrics", "figures", "provenance", "energy", "artifacts"):
        assert f'<section id="{section}">' in html
    assert 'class="prov-tree"' in html  # no graph.svg in the run: the drawn fallback
    assert "seed" in html and "differs across ranks" in html


def test_report_default_output_and_no_figures(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(shared_run("crash"), run_dir)
    proc = cli("report", str(run_dir), "--no-figures")
    assert proc.returncode == 0, proc.stderr
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    assert "0 figures" in proc.stdout and "data:image/png" not in html
    assert "computed from the rank files" in html and "incomplete" in html
    assert not (run_dir / "summary.json").exists()


def test_report_embeds_graph_svg(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(shared_run("one"), run_dir)
    (run_dir / "graph.svg").write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "x.dtd">\n'
        '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><g id="graphviz-graph"/></svg>\n'
    )
    html = _report(run_dir, tmp_path / "r.html", "--no-figures")
    assert 'id="graphviz-graph"' in html and "<?xml" not in html and "<!DOCTYPE svg" not in html
    assert 'class="prov-tree"' not in html


def test_report_without_matplotlib_still_writes_the_page(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import sys; sys.modules['matplotlib'] = None\n")
    env = {"PYTHONPATH": os.pathsep.join([str(site), str(Path(__file__).resolve().parents[2])])}
    proc = cli("report", str(shared_run("one")), "-o", str(tmp_path / "r.html"), env=env)
    assert proc.returncode == 0, proc.stderr
    assert 'pip install "yprov4ml-hpc[plot]"' in proc.stderr and "Traceback" not in proc.stderr
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "No figures" in html and 'id="rank-table"' in html


def test_report_errors_are_one_line(tmp_path: Path) -> None:
    assert_user_error(cli("report", str(tmp_path / "missing")), "no such directory")
    assert_user_error(cli("report", str(tmp_path)), "not a yprov4ml_hpc run directory")
    damaged = tmp_path / "damaged"
    (damaged / "ranks").mkdir(parents=True)
    (damaged / "ranks" / "rank_000000.h5").write_bytes(b"garbage")
    assert_user_error(cli("report", str(damaged)), "no readable rank file")
    run_dir = tmp_path / "run"
    shutil.copytree(shared_run("one"), run_dir)
    (run_dir / "summary.json").write_text("[1, 2")
    assert_user_error(cli("report", str(run_dir), "--no-figures"), "summary.json")
