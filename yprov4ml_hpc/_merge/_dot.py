"""graph.dot (always possible) and graph.svg (where Graphviz's ``dot`` is installed).

The picture follows the PROV document's layers (job -> node -> rank -> context) but is drawn
to be opened at any size: ranks are collapsed into their node, a node holding very many ranks
into a few rank groups, and very many nodes into node groups, each box with its counts and a
tally of rank statuses.  The default stays under ~500 boxes at 10^5 ranks; one box per rank
(``detail="rank"``) is for small jobs or a selection (hosts, rank ranges).

It takes a small typed input (:class:`GraphRun`, built by ``_dot_input.graph_input``), not
the PROV graph, so it neither grows with the document nor depends on how rank metadata is
stored.  PROV's drawing conventions: entities yellow ellipses, activities blue boxes, agents
orange houses; a box with a rank that did not finish gets that status's colour as its border.
Nothing here fails the caller when Graphviz is missing or fails: that is a one-line message.
"""

from __future__ import annotations

import fnmatch
import math
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .. import _constants as C
from .._errors import ConfigError
from .._output import write_replacing

__all__ = [
    "DETAIL_CHOICES",
    "DotGraph",
    "GraphRank",
    "GraphRun",
    "RankSelection",
    "dot_graph",
    "parse_rank_ranges",
    "write_dot",
    "write_svg",
]

DETAIL_CHOICES = ("auto", "node", "rank")
AUTO_RANK_DETAIL_MAX = 64  # "auto" draws one box per rank up to this many (selected) ranks
RANK_DETAIL_MAX = 2048  # "rank" refuses more: Graphviz needs minutes beyond a few thousand boxes
MAX_HOST_BOXES = 256  # above this many nodes, consecutive nodes share a box
RANK_GROUP_SIZE = 64  # a node with more ranks than this is split into rank groups ...
MAX_RANK_GROUPS = 16  # ... of at most this many per node ...
PROCESS_BOX_BUDGET = 384  # ... while nodes and rank groups together stay under this
MAX_CONTEXT_BOXES = 16
MAX_SERIES_BOXES = 24

_STYLE = {
    "entity": 'shape=ellipse, style=filled, fillcolor="#FFFC87"',
    "activity": 'shape=box, style=filled, fillcolor="#9FB1FC"',
    "agent": 'shape=house, style=filled, fillcolor="#FED37F"',
}
# Worst first: the border of a box is the colour of the worst status among its ranks.
_WORST_FIRST = (*C.JOB_STATUS_PRECEDENCE, C.STATUS_DAMAGED)
_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


@dataclass(frozen=True)
class GraphRank:
    """One rank as the picture sees it (a rank with no readable file has host ``""``)."""

    rank: int
    host: str
    status: str


@dataclass(frozen=True)
class GraphRun:
    """What the picture needs of one run: every rank with its host and status, and counts."""

    experiment: str
    run_id: str
    world_size: int
    ranks: tuple[GraphRank, ...]
    contexts: tuple[str, ...] = ()
    series: tuple[tuple[str, str], ...] = ()  # (context, metric name), one per series of the job
    params: int = 0
    # (kind: artifact/model/dataset, role: input/output) -> count
    artifacts: Mapping[tuple[str, str], int] = field(default_factory=dict)
    rank_files: int = 0
    user: str = ""  # prov_user_namespace, if any
    collector: str = ""  # yprov4ml_hpc version that wrote the rank files


@dataclass(frozen=True)
class RankSelection:
    """Which ranks to draw: hosts matching any pattern (fnmatch) and ranks in any range."""

    hosts: tuple[str, ...] = ()
    ranks: tuple[tuple[int, int], ...] = ()  # inclusive ranges

    def __bool__(self) -> bool:
        return bool(self.hosts or self.ranks)

    def keep(self, rank: GraphRank) -> bool:
        if self.hosts and not any(fnmatch.fnmatchcase(rank.host, p) for p in self.hosts):
            return False
        return not self.ranks or any(low <= rank.rank <= high for low, high in self.ranks)


@dataclass(frozen=True)
class DotGraph:
    text: str
    nodes: int
    edges: int
    level: str  # "rank" or "node": what the rank layer shows


def parse_rank_ranges(text: str) -> tuple[tuple[int, int], ...]:
    """``"0-63,100"`` -> ``((0, 63), (100, 100))``; ConfigError naming the bad part."""
    out = []
    for part in text.split(","):
        match = _RANGE.match(part)
        if match is None:
            raise ConfigError(
                f"--ranks {text!r}: {part.strip()!r} is not a rank or a range; write e.g. 0-63,100"
            )
        low = int(match.group(1))
        high = int(match.group(2)) if match.group(2) is not None else low
        if high < low:
            raise ConfigError(f"--ranks {text!r}: range {part.strip()!r} ends before it starts")
        out.append((low, high))
    return tuple(out)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _ranges(ranks: Sequence[int]) -> str:
    """Sorted ranks as ``0-3,8``."""
    parts: list[str] = []
    i = 0
    while i < len(ranks):
        j = i
        while j + 1 < len(ranks) and ranks[j + 1] == ranks[j] + 1:
            j += 1
        parts.append(str(ranks[i]) if i == j else f"{ranks[i]}-{ranks[j]}")
        i = j + 1
    text = ",".join(parts)
    return text if len(text) <= 40 else text[:37] + "..."


def _tally(ranks: Iterable[GraphRank]) -> Counter[str]:
    return Counter(r.status for r in ranks)


def _tally_text(tally: Counter[str]) -> str:
    order = C.STATUS_ORDER
    known = [s for s in order if tally.get(s)] + sorted(s for s in tally if s not in order)
    return ", ".join(f"{tally[s]:,} {s}" for s in known)


def _border(tally: Counter[str]) -> str:
    worst = next((s for s in _WORST_FIRST if tally.get(s)), None)
    return f', color="{C.STATUS_COLORS[worst]}", penwidth=3' if worst else ""


class _Dot:
    """Collects boxes and arrows; every box has a stable id, so a diff of two pictures reads."""

    def __init__(self) -> None:
        self.lines = [
            "digraph prov {",
            "  rankdir=BT;",
            "  node [fontname=Helvetica, fontsize=10];",
            "  edge [fontname=Helvetica, fontsize=8];",
        ]
        self.nodes = 0
        self.edges = 0
        self._seen: set[str] = set()

    def box(self, ident: str, kind: str, label: str, extra: str = "") -> str:
        if ident not in self._seen:
            self._seen.add(ident)
            self.nodes += 1
            self.lines.append(f"  {_quote(ident)} [label={_quote(label)}, {_STYLE[kind]}{extra}];")
        return ident

    def arrow(self, source: str, target: str, relation: str) -> None:
        self.edges += 1
        self.lines.append(f"  {_quote(source)} -> {_quote(target)} [label={_quote(relation)}];")

    def text(self) -> str:
        return "\n".join([*self.lines, "}"]) + "\n"


def _level(detail: str, selected: int) -> str:
    if detail not in DETAIL_CHOICES:
        raise ConfigError(f"graph detail must be one of {DETAIL_CHOICES}, got {detail!r}")
    if detail == "auto":
        return "rank" if selected <= AUTO_RANK_DETAIL_MAX else "node"
    if detail == "rank" and selected > RANK_DETAIL_MAX:
        raise ConfigError(
            f"--detail rank draws one box per rank: {selected:,} ranks selected, at most "
            f"{RANK_DETAIL_MAX:,}; select fewer with --node HOST or --ranks FIRST-LAST"
        )
    return detail


def _chunks(items: Sequence[GraphRank], count: int) -> list[Sequence[GraphRank]]:
    size = math.ceil(len(items) / count)
    return [items[i : i + size] for i in range(0, len(items), size)]


class _RunPicture:
    def __init__(self, dot: _Dot, run: GraphRun, prefix: str, ranks: list[GraphRank], level: str) -> None:
        self.dot, self.run, self.p, self.ranks, self.level = dot, run, prefix, ranks, level
        self.job = f"{prefix}:job"

    def draw(self, selection: RankSelection) -> str:
        dot, run = self.dot, self.run
        tally = _tally(run.ranks)
        label = f"Job\n{run.experiment}_{run.run_id}\n{run.world_size:,} ranks: {_tally_text(tally)}"
        if selection:
            label += f"\nshowing {len(self.ranks):,} selected ranks"
        dot.box(self.job, "activity", label, _border(tally))
        dot.arrow(self.job, self._agent("user", run.user), "wasAssociatedWith")
        dot.arrow(self.job, self._agent("collector", run.collector), "wasAssociatedWith")
        self._process_layer()
        self._entities()
        return self.job

    def _agent(self, kind: str, value: str) -> str:
        if kind == "user":
            label = "Person\nuser" + (f"\n{value}" if value else "")
            return self.dot.box(f"agent:user:{value}", "agent", label)
        return self.dot.box(
            f"agent:collector:{value}", "agent", f"SoftwareAgent\nyprov4ml_hpc {value}".rstrip()
        )

    def _process_layer(self) -> None:
        by_host: dict[str, list[GraphRank]] = {}
        for rank in self.ranks:
            by_host.setdefault(rank.host, []).append(rank)
        missing = by_host.pop("", [])
        hosts = sorted(by_host)
        if self.level == "rank":
            for i, host in enumerate(hosts):
                node = self._node_box(f"{self.p}:node{i}", host, by_host[host])
                for rank in by_host[host]:
                    self._rank_box(rank, node)
            for rank in missing:
                self._rank_box(rank, self.job)
            return
        if missing:
            tally = _tally(missing)
            label = f"Ranks without a file\n{len(missing):,} ranks: {_ranges([r.rank for r in missing])}"
            box = self.dot.box(f"{self.p}:missing", "activity", label, _border(tally))
            self.dot.arrow(box, self.job, "wasStartedBy")
        if len(hosts) > MAX_HOST_BOXES:
            self._host_groups(hosts, by_host)
            return
        big = [h for h in hosts if len(by_host[h]) > RANK_GROUP_SIZE]
        per_host = min(MAX_RANK_GROUPS, (PROCESS_BOX_BUDGET - len(hosts)) // len(big)) if big else 0
        for i, host in enumerate(hosts):
            members = by_host[host]
            node = self._node_box(f"{self.p}:node{i}", host, members)
            groups = min(per_host, math.ceil(len(members) / RANK_GROUP_SIZE))
            if len(members) > RANK_GROUP_SIZE and groups >= 2:
                for j, chunk in enumerate(_chunks(members, groups)):
                    tally = _tally(chunk)
                    label = f"Ranks {_ranges([r.rank for r in chunk])}\n{len(chunk):,}: {_tally_text(tally)}"
                    box = self.dot.box(f"{self.p}:node{i}.g{j}", "activity", label, _border(tally))
                    self.dot.arrow(box, node, "wasStartedBy")

    def _node_box(self, ident: str, host: str, members: Sequence[GraphRank]) -> str:
        tally = _tally(members)
        label = f"Node\n{host}\n{len(members):,} ranks: {_tally_text(tally)}"
        box = self.dot.box(ident, "activity", label, _border(tally))
        self.dot.arrow(box, self.job, "wasStartedBy")
        return box

    def _rank_box(self, rank: GraphRank, starter: str) -> None:
        tally = Counter({rank.status: 1})
        box = self.dot.box(
            f"{self.p}:rank{rank.rank}",
            "activity",
            f"RankProcess\nrank {rank.rank} ({rank.status})",
            _border(tally),
        )
        self.dot.arrow(box, starter, "wasStartedBy")

    def _host_groups(self, hosts: list[str], by_host: dict[str, list[GraphRank]]) -> None:
        size = math.ceil(len(hosts) / MAX_HOST_BOXES)
        for i in range(0, len(hosts), size):
            group = hosts[i : i + size]
            members = [r for h in group for r in by_host[h]]
            tally = _tally(members)
            label = (
                f"Nodes\n{group[0]} .. {group[-1]}\n{len(group):,} nodes, {len(members):,} ranks\n"
                f"{_tally_text(tally)}"
            )
            box = self.dot.box(f"{self.p}:nodes{i // size}", "activity", label, _border(tally))
            self.dot.arrow(box, self.job, "wasStartedBy")

    def _entities(self) -> None:
        dot, run, p = self.dot, self.run, self.p
        files = dot.box(f"{p}:files", "entity", f"RankFiles\n{run.rank_files:,} rank files")
        dot.arrow(files, self.job, "wasGeneratedBy")
        if run.params:
            dot.arrow(self.job, dot.box(f"{p}:params", "entity", f"Parameters\n{run.params:,}"), "used")
        contexts = {}
        if len(run.contexts) <= MAX_CONTEXT_BOXES:
            for i, context in enumerate(run.contexts):
                contexts[context] = dot.box(f"{p}:ctx{i}", "activity", f"Context\n{context}")
                dot.arrow(contexts[context], self.job, "wasStartedBy")
        else:
            box = dot.box(f"{p}:contexts", "activity", f"Contexts\n{len(run.contexts):,}")
            dot.arrow(box, self.job, "wasStartedBy")
            contexts = dict.fromkeys(run.contexts, box)
        if len(run.series) <= MAX_SERIES_BOXES:
            for i, (context, name) in enumerate(run.series):
                box = dot.box(f"{p}:m{i}", "entity", f"MetricSeries\n{name}\n({context})")
                dot.arrow(box, contexts.get(context, self.job), "wasGeneratedBy")
                dot.arrow(box, files, "wasDerivedFrom")
        else:
            per_context = Counter(context for context, _ in run.series)
            for i, (context, count) in enumerate(sorted(per_context.items())):
                box = dot.box(f"{p}:series{i}", "entity", f"MetricSeries\n{count:,} series\n({context})")
                dot.arrow(box, contexts.get(context, self.job), "wasGeneratedBy")
                dot.arrow(box, files, "wasDerivedFrom")
        for (kind, role), count in sorted(run.artifacts.items()):
            box = dot.box(f"{p}:{role}.{kind}s", "entity", f"{kind.capitalize()}s ({role})\n{count:,}")
            if role == "input":
                dot.arrow(self.job, box, "used")
            else:
                dot.arrow(box, self.job, "wasGeneratedBy")


def dot_graph(
    runs: Sequence[GraphRun], *, detail: str = "auto", selection: RankSelection | None = None
) -> DotGraph:
    """The picture of one run, or of several chained in the given order."""
    selection = selection or RankSelection()
    chosen = [[r for r in run.ranks if selection.keep(r)] for run in runs]
    if selection and not any(chosen):
        hosts = sorted({r.host for run in runs for r in run.ranks if r.host})
        raise ConfigError(
            f"no rank matches the selection (hosts {list(selection.hosts)}, ranks "
            f"{list(selection.ranks)}); the run's hosts are e.g. {hosts[:5]} and its ranks "
            f"0-{max(run.world_size for run in runs) - 1}"
        )
    level = _level(detail, sum(len(c) for c in chosen))
    dot = _Dot()
    previous: str | None = None
    for i, (run, ranks) in enumerate(zip(runs, chosen, strict=True)):
        prefix = "run" if len(runs) == 1 else f"run{i + 1}"
        job = _RunPicture(dot, run, prefix, ranks, level).draw(selection)
        if previous is not None:
            dot.arrow(job, previous, "wasInformedBy")
        previous = job
    return DotGraph(dot.text(), dot.nodes, dot.edges, level)


def write_dot(graph: DotGraph, path: Path) -> Path:
    write_replacing(path, graph.text)
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
