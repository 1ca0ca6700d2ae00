"""graph.dot (always possible) and graph.svg (where Graphviz's ``dot`` is installed).

PROV's usual drawing conventions: entities are yellow ellipses, activities blue boxes,
agents orange houses; edges are labelled with the relation.  Nothing here ever fails the
caller: a missing or failing ``dot`` becomes a one-line message.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import _constants as C
from .._output import write_replacing

if TYPE_CHECKING:
    import networkx as nx

__all__ = ["write_dot", "write_svg"]

_STYLE = {
    "entity": 'shape=ellipse, style=filled, fillcolor="#FFFC87"',
    "activity": 'shape=box, style=filled, fillcolor="#9FB1FC"',
    "agent": 'shape=house, style=filled, fillcolor="#FED37F"',
}
_LABEL_KEYS = ("yprov4ml:name", "yprov4ml:context", "yprov4ml:host", "yprov4ml:rank", "prov:label")


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _label(ident: str, attrs: dict[str, Any]) -> str:
    kind = (
        str(attrs.get("prov:type", "")).split(":")[-1] if not isinstance(attrs.get("prov:type"), list) else ""
    )
    detail = next((str(attrs[k]) for k in _LABEL_KEYS if k in attrs), ident.split(":", 1)[-1])
    if kind == "RankProcess":
        detail = f"rank {attrs.get('yprov4ml:rank')} ({attrs.get('yprov4ml:status')})"
    return f"{kind}\n{detail}" if kind else detail


def write_dot(graph: nx.MultiDiGraph, path: Path) -> Path:
    lines = [
        "digraph prov {",
        "  rankdir=BT;",
        "  node [fontname=Helvetica, fontsize=10];",
        "  edge [fontname=Helvetica, fontsize=8];",
    ]
    for ident, data in graph.nodes(data=True):
        lines.append(
            f"  {_quote(ident)} [label={_quote(_label(ident, data['attrs']))}, {_STYLE[data['kind']]}];"
        )
    for source, target, data in graph.edges(data=True):
        lines.append(f"  {_quote(source)} -> {_quote(target)} [label={_quote(data['rel'])}];")
    lines.append("}")
    write_replacing(path, "\n".join(lines) + "\n")
    return path


def write_svg(dot_path: Path, svg_path: Path, nodes: int) -> tuple[Path | None, str | None]:
    """Render with Graphviz; returns (svg path or None, one-line message or None)."""
    dot = shutil.which("dot")
    if dot is None:
        return (
            None,
            f"{svg_path.name} not written: Graphviz `dot` is not installed (apt-get install graphviz)",
        )
    if nodes > C.GRAPH_SVG_MAX_NODES:
        return None, (
            f"{svg_path.name} not written: {nodes} nodes is too many to lay out; "
            f"render {dot_path.name} yourself (e.g. dot -Tsvg) if you need it"
        )
    try:
        # To stdout, not `-o svg_path`: dot would write through a link planted under that name.
        proc = subprocess.run([dot, "-Tsvg", str(dot_path)], check=True, capture_output=True, timeout=300)
        write_replacing(svg_path, proc.stdout)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"{svg_path.name} not written: dot failed ({exc})"
    return svg_path, None
