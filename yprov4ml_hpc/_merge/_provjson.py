"""Writing the graph as PROV-JSON, directly (the ``prov`` library needs ~10 s per 10^5 records).

The output is what ``prov`` itself reads back record for record: one JSON object per section
(``agent``, ``activity``, ``entity``, then one per relation), typed literals as
``{"$": lexical, "type": "xsd:..."}`` with ``$`` always a string, PROV times as
``xsd:dateTime`` text in UTC.  One record per line keeps a large document diffable and greppable.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import networkx as nx

from .._output import write_replacing
from ._graph_base import RELATION_ROLES, DateTime, QName

__all__ = ["format_datetime", "literal", "write_prov_json"]

_SECTIONS = ("agent", "activity", "entity", *RELATION_ROLES)
_TIME_KEYS = frozenset({"prov:startTime", "prov:endTime", "prov:time"})
_INT32 = 2**31
_INT64 = 2**63
_COMPACT = (",", ":")
_ENCODER = json.JSONEncoder(separators=_COMPACT, ensure_ascii=False, allow_nan=False)


def format_datetime(ns: int) -> str:
    """``xsd:dateTime`` in UTC with microseconds (what Python's datetime can hold)."""
    seconds, rest = divmod(int(ns), 1_000_000_000)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(seconds))}.{rest // 1000:06d}Z"


def _double(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "INF" if value > 0 else "-INF"
    return repr(value)


def literal(value: Any) -> Any:
    """One attribute value in PROV-JSON form (plain JSON strings are xsd:string)."""
    if isinstance(value, QName):
        return {"$": str(value), "type": "xsd:QName"}
    if isinstance(value, DateTime):
        return {"$": format_datetime(value), "type": "xsd:dateTime"}
    if isinstance(value, bool):
        return {"$": "true" if value else "false", "type": "xsd:boolean"}
    if isinstance(value, int):
        if -_INT32 <= value < _INT32:
            kind = "xsd:int"
        elif -_INT64 <= value < _INT64:
            kind = "xsd:long"
        else:
            kind = "xsd:integer"
        return {"$": str(value), "type": kind}
    if isinstance(value, float):
        return {"$": _double(value), "type": "xsd:double"}
    if isinstance(value, list):
        return [literal(v) for v in value]
    return str(value)


def _encode(attrs: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in attrs.items():
        out[key] = format_datetime(value) if key in _TIME_KEYS else literal(value)
    return out


def _records(graph: nx.MultiDiGraph) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {name: [] for name in _SECTIONS}
    encode = _ENCODER.encode  # one encoder: json.dumps(...) with options builds one per call
    for ident, data in graph.nodes(data=True):
        sections[data["kind"]].append(f"{encode(ident)}:{encode(_encode(data['attrs']))}")
    for source, target, key, data in graph.edges(keys=True, data=True):
        subject, obj = RELATION_ROLES[data["rel"]]
        record = {subject: source, obj: target, **_encode(data["attrs"])}
        sections[data["rel"]].append(f"{encode(key)}:{encode(record)}")
    return sections


def write_prov_json(graph: nx.MultiDiGraph, path: Path) -> int:
    """Write the document atomically (temp file + rename); return its size in bytes."""
    sections = _records(graph)
    parts = ['{"prefix":' + json.dumps(graph.graph["namespaces"], separators=_COMPACT)]
    for name, records in sections.items():
        if records:
            parts.append(f'"{name}":{{\n' + ",\n".join(records) + "\n}")
    text = ",\n".join(parts) + "}\n"
    return write_replacing(path, text)
