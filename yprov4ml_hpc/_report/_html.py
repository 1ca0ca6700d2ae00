"""HTML pieces of the report: escaped tables, sections, the page shell.

The page is one file with no external reference at all (a Content-Security-Policy forbids
fetching anything), so it opens the same on a laptop, a cluster's web portal or offline.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

from ._format import fmt_bytes, fmt_energy, fmt_num, fmt_seconds

__all__ = [
    "badge",
    "fmt_bytes",
    "fmt_energy",
    "fmt_num",
    "fmt_seconds",
    "img",
    "kv_table",
    "page",
    "section",
    "table",
]

CSS = """
:root { --fg:#1d2733; --muted:#5f6b7a; --line:#dfe3e8; --accent:#1f5fa8; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
       margin: 0; background: #f6f7f9; }
header { background: #17324d; color: #fff; padding: 18px 28px; }
header h1 { margin: 0 0 4px; font-size: 22px; font-weight: 600; }
header p { margin: 0; color: #c9d6e3; }
nav { padding: 8px 28px; background: #fff; border-bottom: 1px solid var(--line); position: sticky; top: 0; }
nav a { margin-right: 16px; color: var(--accent); text-decoration: none; }
main { padding: 8px 28px 40px; max-width: 1280px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 12px 18px;
          margin: 16px 0; }
h2 { font-size: 17px; margin: 4px 0 10px; }
table { border-collapse: collapse; font-size: 13px; }
th, td { padding: 3px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { background: #f0f3f6; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
th { white-space: nowrap; }
.kv th { background: none; color: var(--muted); font-weight: normal; width: 190px; }
.scroll { max-height: 520px; overflow: auto; }
.badge { display: inline-block; padding: 0 8px; border-radius: 10px; font-size: 12px; color: #fff; }
.finished { background: #4caf50; } .failed { background: #e53935; } .killed { background: #fb8c00; }
.incomplete, .running { background: #8e24aa; } .missing { background: #9e9e9e; }
.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 14px; }
figure { margin: 0; } figure img { width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: 12.5px; margin-top: 4px; }
.note { color: var(--muted); } .warn { color: #b26a00; }
.graph { overflow: auto; max-height: 900px; border: 1px solid var(--line); }
.graph svg, .graph img { max-width: 100%; height: auto; }
details { margin-top: 10px; } summary { cursor: pointer; color: var(--accent); }
code { font-size: 12.5px; background: #f0f3f6; padding: 0 3px; border-radius: 3px; }
footer { color: var(--muted); font-size: 12px; padding: 0 28px 24px; }
"""

# Nothing may be fetched: images are data: URIs, styles are inline.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def cell(value: Any, numeric: bool = False, raw: bool = False) -> str:
    text = value if raw else escape(str(value))
    return f'<td class="num">{text}</td>' if numeric else f"<td>{text}</td>"


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    numeric: Sequence[int] = (),
    table_id: str = "",
    raw: Sequence[int] = (),
) -> str:
    """A table; cells are escaped unless their column index is in ``raw`` (pre-built HTML)."""
    ident = f' id="{escape(table_id)}"' if table_id else ""
    head = "".join(
        f'<th class="num">{escape(h)}</th>' if i in numeric else f"<th>{escape(h)}</th>"
        for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>" + "".join(cell(v, i in numeric, i in raw) for i, v in enumerate(row)) + "</tr>" for row in rows
    )
    return (
        f'<div class="scroll"><table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'
    )


def kv_table(pairs: Iterable[tuple[str, Any]]) -> str:
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in pairs)
    return f'<table class="kv">{rows}</table>'


def badge(status: str) -> str:
    return f'<span class="badge {escape(status)}">{escape(status)}</span>'


def section(ident: str, title: str, body: str) -> str:
    return f'<section id="{escape(ident)}"><h2>{escape(title)}</h2>{body}</section>'


def img(png: bytes, alt: str, ident: str, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure class="plot" id="{escape(ident)}"><img alt="{escape(alt)}" '
        f'src="data:image/png;base64,{data}"><figcaption>{escape(caption)}</figcaption></figure>'
    )


def page(title: str, subtitle: str, sections: Sequence[tuple[str, str, str]], footer: str) -> str:
    """The whole document; ``sections`` are (id, nav label, section HTML)."""
    nav = "".join(f'<a href="#{escape(i)}">{escape(label)}</a>' for i, label, _ in sections)
    body = "".join(html for _, _, html in sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{escape(title)}</h1><p>{subtitle}</p></header><nav>{nav}</nav>"
        f"<main>{body}</main><footer>{footer}</footer></body></html>\n"
    )
