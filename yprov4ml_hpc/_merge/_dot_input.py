"""What the picture (graph.dot) needs of a run, taken from the reader's records.

The only code that reads rank metas for the picture: when they change shape, this function
changes and ``_dot`` does not.
"""

from __future__ import annotations

from collections import Counter

from .. import _constants as C
from .._reader import RunData
from ._dot import GraphRank, GraphRun

__all__ = ["graph_input"]


def graph_input(run: RunData) -> GraphRun:
    ranks = []
    for rank in range(run.world_size):
        meta = run.metas.get(rank)
        if meta is None:
            ranks.append(GraphRank(rank, "", C.STATUS_MISSING))
        else:
            ranks.append(GraphRank(rank, meta.attrs.host, meta.attrs.merge_status))
    series: set[tuple[str, str]] = set()
    contexts: set[str] = set()
    params: set[str] = set()
    artifacts: Counter[tuple[str, str]] = Counter()
    for meta in run.metas.values():
        series.update((s.context, s.name) for s in meta.series)
        for record in meta.artifacts:
            contexts.add(str(record.get("context")))
            role = "input" if record.get("role") == "input" else "output"
            artifacts[str(record.get("kind", "artifact")), role] += 1
        params.update(str(record["name"]) for record in meta.params)
    contexts |= {context for context, _ in series}
    first = next(iter(run.metas.values())).attrs
    return GraphRun(
        experiment=run.experiment,
        run_id=run.run_id,
        world_size=run.world_size,
        ranks=tuple(ranks),
        contexts=tuple(sorted(contexts)),
        series=tuple(sorted(series)),
        params=len(params),
        artifacts=dict(artifacts),
        rank_files=len(run.metas),
        user=first.user_namespace,
        collector=first.versions.get("yprov4ml_hpc", ""),
    )
