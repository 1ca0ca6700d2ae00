"""Building blocks of the PROV graph: relation roles, literal markers, the graph builder.

The builder owns the networkx ``MultiDiGraph`` and the two agents every run shares (the
collector software and the user), so several merged runs point at the same agents.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import networkx as nx

from .. import _constants as C
from .._reader import RunData

__all__ = ["RELATION_ROLES", "SAFE_KEY", "Builder", "DateTime", "QName", "ranges"]

P = C.PROV_NAMESPACE_PREFIX
SAFE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")  # usable as a yprov4ml:<key> local name

# relation -> (PROV-JSON key of the edge's source, key of its target)
RELATION_ROLES: dict[str, tuple[str, str]] = {
    "wasAssociatedWith": ("prov:activity", "prov:agent"),
    "wasStartedBy": ("prov:activity", "prov:starter"),
    "wasInformedBy": ("prov:informed", "prov:informant"),
    "used": ("prov:activity", "prov:entity"),
    "wasGeneratedBy": ("prov:entity", "prov:activity"),
    "wasAttributedTo": ("prov:entity", "prov:agent"),
    "wasDerivedFrom": ("prov:generatedEntity", "prov:usedEntity"),
    "hadMember": ("prov:collection", "prov:entity"),
}


class QName(str):
    """A value written as ``xsd:QName`` (``prov:type`` values)."""

    __slots__ = ()


class DateTime(int):
    """Nanoseconds since the epoch, written as an ``xsd:dateTime`` literal."""

    __slots__ = ()


def ranges(ranks: Sequence[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2,5"``: a rank list that stays short at 10^5 ranks."""
    parts: list[str] = []
    start = prev = None
    for rank in sorted(ranks):
        if prev is not None and rank == prev + 1:
            prev = rank
            continue
        if start is not None:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = rank
    if start is not None:
        parts.append(str(start) if start == prev else f"{start}-{prev}")
    return ",".join(parts)


class Builder:
    def __init__(self) -> None:
        self.graph = nx.MultiDiGraph()
        self.graph.graph["namespaces"] = {P: C.PROV_NAMESPACE_URI, "xsd": C.XSD_NAMESPACE_URI}
        self._relations = 0
        self._users: dict[str, str] = {}

    def element(self, kind: str, ident: str, attrs: dict[str, Any]) -> str:
        self.graph.add_node(ident, kind=kind, attrs=attrs)
        return ident

    def relate(self, rel: str, source: str, target: str, attrs: dict[str, Any] | None = None) -> None:
        self._relations += 1
        self.graph.add_edge(source, target, key=f"_:r{self._relations}", rel=rel, attrs=attrs or {})

    def collector(self, run: RunData) -> str:
        versions = next(iter(run.metas.values())).attrs.versions
        version = versions.get("yprov4ml_hpc", "unknown")
        ident = f"{P}:yprov4ml_hpc-{version}"
        if ident not in self.graph:
            attrs: dict[str, Any] = {"prov:type": QName("prov:SoftwareAgent"), "prov:label": "yprov4ml_hpc"}
            for name, value in sorted(versions.items()):
                if SAFE_KEY.match(name):
                    attrs[f"{P}:{'version' if name == 'yprov4ml_hpc' else name}"] = value
            self.element("agent", ident, attrs)
        return ident

    def user(self, run: RunData) -> str:
        namespace = next((m.attrs.user_namespace for m in run.metas.values()), "")
        ident = self._users.get(namespace)
        if ident is None:
            ident = f"{P}:user" + (str(len(self._users) + 1) if self._users else "")
            self._users[namespace] = ident
            attrs: dict[str, Any] = {"prov:type": QName("prov:Person")}
            if namespace:
                attrs[f"{P}:user_namespace"] = namespace
            self.element("agent", ident, attrs)
        return ident
