"""What the picture (graph.dot) needs of a run, taken from the merge's input.

The only code that reads rank metas for the picture: when the metas change shape, this
function changes and ``_dot`` does not.
"""

from __future__ import annotations

import json
from collections import Counter

from .. import _constants as C
from ._dot import GraphRank, GraphRun
from ._inputs import RunInput
from ._stats import rank_status

__all__ = ["graph_input"]


def graph_input(run: RunInput) -> GraphRun:
    ranks = []
    for rank in range(run.world_size):
        meta = run.metas.get(rank)
        if meta is None:
            ranks.append(GraphRank(rank, "", C.STATUS_MISSING))
        else:
            ranks.append(GraphRank(rank, str(meta["attrs"].get("host", "")), rank_status(meta["attrs"])))
    series: set[tuple[str, str]] = set()
    contexts: set[str] = set()
    params: set[str] = set()
    artifacts: Counter[tuple[str, str]] = Counter()
    for meta in run.metas.values():
        for s in meta["series"]:
            series.add((s["context"], s["name"]))
        for record in meta["artifacts"]:
            contexts.add(str(record.get("context")))
            role = "input" if record.get("role") == "input" else "output"
            artifacts[str(record.get("kind", "artifact")), role] += 1
        params.update(str(record["name"]) for record in meta["params"])
    contexts |= {context for context, _ in series}
    first = next(iter(run.metas.values()))["attrs"]
    try:
        versions = json.loads(first.get("versions") or "{}")
    except (TypeError, ValueError):
        versions = {}
    version = versions.get("yprov4ml_hpc", "") if isinstance(versions, dict) else ""
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
        user=str(first.get("user_namespace") or ""),
        collector=str(version),
    )
