"""Building blocks of the PROV graph: relation roles, literal markers, the graph builder.

The builder owns the networkx ``MultiDiGraph`` and the two agents every run shares (the
collector software and the user), so several merged runs point at the same agents.

Records that exist once per rank are not networkx nodes: a node costs ~2 KB and ~10 us, which
at 10^5 ranks is most of finalize's memory and time.  They are one :class:`RecordBlock` node
that the PROV-JSON writer expands, record by record, where its records would have stood.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import networkx as nx

from .. import _constants as C
from .._reader import RunData

__all__ = [
    "RELATION_ROLES",
    "SAFE_KEY",
    "Builder",
    "DateTime",
    "ElementSink",
    "QName",
    "RecordBlock",
    "RelationSink",
    "ranges",
]

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


ElementSink = Callable[[str, str, dict[str, Any]], None]  # (kind, ident, attrs)
RelationSink = Callable[[str, str, str, str, dict[str, Any]], None]  # (rel, key, source, target, attrs)


class RecordBlock(Protocol):
    """Many records kept as one graph node (``block`` data) and generated when written.

    ``emit`` gives the block's elements, and the relations whose source is one of them, in the
    order that one networkx node per element would have had: elements in insertion order, each
    followed by its outgoing relations.  An edge that the builder adds *to* an element of a
    block leaves a placeholder node without ``kind`` in the graph; writers skip it.
    """

    def emit(self, element: ElementSink, relation: RelationSink) -> None: ...


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

    def block(self, ident: str, block: RecordBlock) -> None:
        """Add a block of records at this point of the node order (``ident`` is never written)."""
        self.graph.add_node(ident, block=block)

    def relate(self, rel: str, source: str, target: str, attrs: dict[str, Any] | None = None) -> None:
        self.graph.add_edge(source, target, key=self.relation_key(), rel=rel, attrs=attrs or {})

    def relation_key(self) -> str:
        """The next relation's blank-node id (``_:r<n>``, numbered in the order of creation)."""
        self._relations += 1
        return f"_:r{self._relations}"

    def reserve_relations(self, count: int) -> int:
        """Number the next ``count`` relations for a block; returns the first number."""
        first = self._relations + 1
        self._relations += count
        return first

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
