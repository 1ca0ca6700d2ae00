"""The HTML report in a real browser: headless Chromium renders it, with figures and rank table.

Skipped where Chromium is not installed (Debian: apt-get install chromium); CI installs it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from _runfactory import cli, shared_run

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (apt-get install chromium)")
mpl_image = pytest.importorskip("matplotlib.image")

# No GPU, no sandbox (root in a container), and nothing that talks to the network.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    proc = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "report.html"
    proc = cli("report", str(shared_run("eight")), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


def test_screenshot_is_not_blank(report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    _chromium(tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,4200", report.as_uri())
    pixels = mpl_image.imread(shot)[..., :3]
    assert pixels.shape[:2] == (4200, 1280)
    assert float(pixels.var()) > 0.005
    # Each band of the page shows something: header and tables at the top, figures below.
    for top in range(0, 3600, 600):
        band = pixels[top : top + 600]
        assert float(band.var()) > 0.001, f"rows {top}-{top + 600} look empty"
    shutil.copy(shot, report.with_name("report-screenshot.png"))  # kept for a human to look at


def test_dom_has_figures_rank_table_and_graph(report: Path, tmp_path: Path) -> None:
    dom = _chromium(tmp_path / "profile", "--dump-dom", report.as_uri()).stdout
    table = dom.split('id="rank-table"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", table, re.S)
    assert len(rows) == 9  # header + one row per rank
    assert [re.search(r"<td[^>]*>(\d+)</td>", r).group(1) for r in rows[1:]] == [str(r) for r in range(8)]
    images = re.findall(r'<img alt="([^"]*)" src="data:image/png;base64,', dom)
    assert len(images) == 6 and "loss [training]" in images
    assert dom.count('class="rank"') == 8  # the provenance graph's rank cells (fallback drawing)
    for section in ("overview", "ranks", "params", "metrics", "figures", "provenance", "energy"):
        assert f'id="{section}"' in dom
