"""An inline SVG of the layered provenance graph, for reports made without Graphviz.

It draws what DESIGN section 5 layers: the job activity, one box per node, each node's
rank activities as small cells coloured by status, the context activities every rank ran,
and the entities and agents as counts.  It stays readable at 10^4 ranks by capping what is
drawn (nodes, cells per node) and saying how many more there are.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from .. import _constants as C
from .._reader import RunData
from ._format import fmt_seconds

__all__ = ["STATUS_COLORS", "TreeRank", "graph_section", "tree_svg"]

STATUS_COLORS = {s: c for s, c in C.STATUS_COLORS.items() if s != C.STATUS_DAMAGED}  # a summary's statuses
ACTIVITY = "#dbe8fb"  # PROV's usual colours: activities blue, entities yellow, agents orange
ENTITY = "#fff3c4"
AGENT = "#fde0c5"
MAX_NODES = 24
MAX_CELLS = 64
CELL, GAP = 13, 3
WIDTH = 1000
MAX_INLINE_SVG_BYTES = 8 << 20  # a bigger graph.svg is left out of the report (it would not render)


@dataclass(frozen=True)
class TreeRank:
    rank: int
    host: str
    status: str
    note: str = ""  # shown as the cell's tooltip


def _box(
    x: float,
    y: float,
    w: float,
    h: float,
    fill: str,
    lines: Sequence[str],
    title: str = "",
    rx: int = 4,
    cls: str = "",
) -> str:
    bold = ' font-weight="600"'
    text = "".join(
        f'<text x="{x + w / 2:.1f}" y="{y + 16 + 14 * i:.1f}" text-anchor="middle"'
        f"{bold if i == 0 else ''}>{escape(line)}</text>"
        for i, line in enumerate(lines)
    )
    tip = f"<title>{escape(title)}</title>" if title else ""
    return (
        f'<g class="{cls}">{tip}<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="{rx}" '
        f'fill="{fill}" stroke="#607d8b"/>{text}</g>'
    )


def _line(x1: float, y1: float, x2: float, y2: float) -> str:
    return f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="#90a4ae"/>'


def tree_svg(
    title: str,
    ranks: Sequence[TreeRank],
    contexts: Sequence[str],
    entities: Sequence[tuple[str, int]],
    agents: Sequence[str],
) -> str:
    """The SVG markup (no XML prolog: it is meant to sit inside an HTML page)."""
    nodes: dict[str, list[TreeRank]] = {}
    for r in sorted(ranks, key=lambda r: r.rank):
        nodes.setdefault(r.host or "?", []).append(r)
    shown = list(nodes.items())[:MAX_NODES]
    hidden_nodes = len(nodes) - len(shown)

    # Node boxes: cells in a grid of up to 8 columns; boxes flow into rows of WIDTH.
    boxes: list[tuple[str, list[TreeRank], float, float]] = []
    for host, members in shown:
        cells = min(len(members), MAX_CELLS)
        cols = min(cells, 8)
        rows = math.ceil(cells / cols)
        w = max(130.0, cols * (CELL + GAP) + 24)
        h = 44.0 + rows * (CELL + GAP) + (14 if len(members) > MAX_CELLS else 0)
        boxes.append((host, members, w, h))
    parts: list[str] = []
    y_nodes = 90.0
    x, y, row_h = 20.0, y_nodes, 0.0
    placed: list[tuple[str, list[TreeRank], float, float, float, float]] = []
    row_start = 0

    def center_row(end: int, right: float) -> None:
        shift = (WIDTH - 20 - right) / 2  # rows are centred under the job box
        for i in range(row_start, end):
            host, members, bx, by, w, h = placed[i]
            placed[i] = (host, members, bx + shift, by, w, h)

    for host, members, w, h in boxes:
        if x + w > WIDTH - 20 and x > 20:
            center_row(len(placed), x - 16)
            row_start = len(placed)
            x, y, row_h = 20.0, y + row_h + 24, 0.0
        placed.append((host, members, x, y, w, h))
        x += w + 16
        row_h = max(row_h, h)
    center_row(len(placed), x - 16)
    bottom = y + row_h
    job_w = 360.0
    job_x = (WIDTH - job_w) / 2
    parts.append(
        _box(
            job_x,
            16,
            job_w,
            40,
            ACTIVITY,
            [title, f"job activity \u00b7 {len(ranks)} ranks"],
            "yprov4ml:Job",
            cls="job",
        )
    )
    for host, members, bx, by, w, h in placed:
        parts.append(_line(WIDTH / 2, 56, bx + w / 2, by))
        parts.append(
            _box(
                bx,
                by,
                w,
                h,
                ACTIVITY,
                [host, f"node \u00b7 {len(members)} ranks"],
                f"yprov4ml:Node {host}",
                cls="node",
            )
        )
        for i, r in enumerate(members[:MAX_CELLS]):
            cx = bx + 12 + (i % 8) * (CELL + GAP)
            cy = by + 38 + (i // 8) * (CELL + GAP)
            color = STATUS_COLORS.get(r.status, "#bdbdbd")
            tip = f"rank {r.rank} \u00b7 {r.host} \u00b7 {r.status}" + (f" \u00b7 {r.note}" if r.note else "")
            parts.append(
                f'<rect class="rank" x="{cx:.1f}" y="{cy:.1f}" width="{CELL}" height="{CELL}" rx="2" '
                f'fill="{color}"><title>{escape(tip)}</title></rect>'
            )
        if len(members) > MAX_CELLS:
            parts.append(
                f'<text x="{bx + w / 2:.1f}" y="{by + h - 6:.1f}" text-anchor="middle" '
                f'font-size="11">+{len(members) - MAX_CELLS} more ranks</text>'
            )
    if hidden_nodes:
        parts.append(
            f'<text x="{WIDTH / 2:.1f}" y="{bottom + 20:.1f}" text-anchor="middle">'
            f"+{hidden_nodes} more nodes not drawn</text>"
        )
        bottom += 24

    # Contexts every rank ran, then entities and agents as one row each.
    y_ctx = bottom + 44
    ctx_list = list(contexts)[:10] or ["(no metrics)"]
    ctx_w = min(150.0, (WIDTH - 40) / len(ctx_list) - 10)
    start = (WIDTH - len(ctx_list) * (ctx_w + 10) + 10) / 2
    parts.append(
        f'<text x="20" y="{y_ctx - 10:.1f}" font-size="11" fill="#455a64">context activities '
        "(one per rank; wasInformedBy its rank)</text>"
    )
    for i, ctx in enumerate(ctx_list):
        cx = start + i * (ctx_w + 10)
        parts.append(_box(cx, y_ctx, ctx_w, 26, ACTIVITY, [ctx], "yprov4ml:Context", cls="context"))
    y_ent = y_ctx + 60
    items = [(f"{label}: {count}", ENTITY) for label, count in entities] + [(a, AGENT) for a in agents]
    item_w = min(170.0, (WIDTH - 40) / max(len(items), 1) - 10)
    start = (WIDTH - len(items) * (item_w + 10) + 10) / 2
    parts.append(
        f'<text x="20" y="{y_ent - 10:.1f}" font-size="11" fill="#455a64">entities (yellow) '
        "and agents (orange)</text>"
    )
    for i, (label, fill) in enumerate(items):
        ex = start + i * (item_w + 10)
        rx = 14 if fill == ENTITY else 2
        parts.append(_box(ex, y_ent, item_w, 26, fill, [label], rx=rx, cls="entity"))
    height = y_ent + 70
    legend = "".join(
        f'<rect x="{20 + i * 110}" y="{height - 24}" width="12" height="12" fill="{color}"/>'
        f'<text x="{36 + i * 110}" y="{height - 14}" font-size="11">{status}</text>'
        for i, (status, color) in enumerate((s, c) for s, c in STATUS_COLORS.items() if s != "running")
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="prov-tree" viewBox="0 0 {WIDTH} {height:.0f}" '
        f'width="100%" font-family="sans-serif" font-size="12" role="img" '
        f'aria-label="layered provenance graph: job, nodes, ranks, contexts">'
        + "".join(parts)
        + legend
        + "</svg>"
    )


_SVG_START = re.compile(rb"<svg\b", re.IGNORECASE)


def _svg_image(svg: bytes) -> str:
    """graph.svg as an ``<img>`` with a data: URI, never inline markup.

    The file comes from the run directory, which anyone who can write there may have planted
    (a ``<script>``, ``onload=``, links, a ``<form>``, remote images).  An SVG shown through
    ``<img>`` is rendered as a picture only: browsers run none of its scripts, follow none of
    its links and fetch nothing it references, and base64 keeps its text out of the page.
    """
    data = base64.b64encode(svg).decode("ascii")
    return (
        '<img class="graph-image" alt="provenance graph (graph.svg, drawn by Graphviz)" '
        f'src="data:image/svg+xml;base64,{data}">'
    )


def graph_section(root: Path, run: RunData, data: dict[str, Any]) -> str:
    """graph.svg (as an image) when Graphviz made one, else the layered tree drawn here."""
    svg_path = root / "graph.svg"
    # A link is not followed: it could point at any file the reader may read, into a report
    # that gets shared.
    if not svg_path.is_symlink() and svg_path.is_file() and svg_path.stat().st_size <= MAX_INLINE_SVG_BYTES:
        picture = svg_path.read_bytes()
        if _SVG_START.search(picture):
            return (
                '<p class="note">graph.svg, drawn by Graphviz from graph.dot (shown as a picture: '
                "open the file itself to zoom).</p>"
                f'<div class="graph" id="prov-graph">{_svg_image(picture)}</div>'
            )
    statuses = {int(r["rank"]): r for r in data.get("ranks", [])}
    ranks = [
        TreeRank(
            rank,
            str(info.get("host") or "?"),
            str(info.get("status")),
            fmt_seconds(info.get("wall_time_s")) if info.get("wall_time_s") is not None else "",
        )
        for rank, info in sorted(statuses.items())
    ]
    contexts = sorted({ctx for _, ctx, _ in run.series_keys()})
    series = {(n, c) for n, c, _ in run.series_keys()}
    entities = [
        ("params", len({n for r in run.ranks for n in run.params(r.rank)})),
        ("metric series", len(series)),
        ("artifacts", len(run.artifacts())),
        ("rank files", len(run.ranks)),
    ]
    agents = [
        "user"
        + (
            f" ({run.meta(run.ranks[0].rank).attrs.user_namespace})"
            if run.ranks and run.meta(run.ranks[0].rank).attrs.user_namespace
            else ""
        ),
        "yprov4ml-hpc",
    ]
    hint = (
        "graph.svg was not found, so this is the layered graph drawn from the rank files; "
        "`yprov4ml-hpc graph RUN_DIR` writes graph.dot (and graph.svg where Graphviz is installed)."
    )
    svg = tree_svg(f"{run.experiment}_{run.run_id}", ranks, contexts, entities, agents)
    return f'<p class="note">{escape(hint)}</p><div class="graph" id="prov-graph">{svg}</div>'
