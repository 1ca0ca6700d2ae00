"""What yProv4ML's ``start_run``/``end_run`` options promise besides the document.

``metrics_file_type="csv"`` -> every series also as upstream's CSV file
(``metrics_GR<rank>/<metric>_<context>_<source>_GR<rank>.csv``, columns
``epoch,value,timestep``, time in milliseconds as upstream writes it);
``create_card=True`` -> ``card.json``, a run card made from ``summary.json``;
``crate_ro_crate=True`` -> ``ro-crate-metadata.json``, an RO-Crate of the whole run
directory (the ``rocrate`` extra).  Rank 0 writes them, after the document and summary exist,
from the rank files (the one reader), so they hold every rank's data.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .. import _constants as C
from .._errors import MissingDependencyError

if TYPE_CHECKING:
    from .._run import Run

__all__ = ["CSV_HEADER", "csv_path", "write_card", "write_csv_metrics", "write_end_outputs", "write_ro_crate"]

CSV_HEADER = ("epoch", "value", "timestep")  # upstream's column names
CSV_SOURCE = "None"  # upstream's file name when a metric has no source; we do not store one
CARD_FILENAME = "card.json"
CRATE_METADATA = "ro-crate-metadata.json"


def write_end_outputs(run: Run, *, csv: bool, csv_separator: str, ro_crate: bool, card: bool) -> None:
    """end_run's extra files, on rank 0 only; the crate last, so that it lists the others."""
    if run.rank != 0 or not (csv or ro_crate or card):
        return
    if csv:
        write_csv_metrics(run.run_dir, csv_separator)
    if card:
        write_card(run.run_dir)
    if ro_crate:
        write_ro_crate(run.run_dir)


def _component(text: str) -> str:
    """A name that is one safe path component and maps back (percent-encoding)."""
    return quote(text, safe="") or "_"


def csv_path(run_dir: Path, metric: str, context: str, rank: int) -> Path:
    name = f"{_component(metric)}_{_component(context)}_{CSV_SOURCE}_GR{rank}.csv"
    return run_dir / f"metrics_GR{rank}" / name


def write_csv_metrics(run_dir: Path, separator: str = ",") -> list[Path]:
    """Write every series of every rank as upstream's CSV; return the files written."""
    from .._reader import load_run

    data = load_run(run_dir)
    written = []
    for metric, context, rank in data.series_keys():
        series = data.series(metric, context, rank)
        path = csv_path(Path(run_dir), metric, context, rank)
        path.parent.mkdir(exist_ok=True)
        lines = [separator.join(CSV_HEADER)]
        lines.extend(
            f"{int(step)}{separator}{float(value)!r}{separator}{int(time_ns) // 1_000_000}"
            for step, value, time_ns in zip(series.step, series.value, series.time_ns, strict=True)
        )
        tmp = path.with_suffix(".csv.tmp")
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        written.append(path)
    return written


def write_card(run_dir: Path) -> Path:
    """``card.json``: who ran what, where, with which results, from summary.json and the rank files."""
    from .._reader import load_run

    run_dir = Path(run_dir)
    summary = json.loads((run_dir / C.SUMMARY_FILENAME).read_text(encoding="utf-8"))
    data = load_run(run_dir)
    artifacts = data.artifacts()
    card: dict[str, Any] = {
        "schema": "yprov4ml_hpc/card",
        "schema_version": 1,
        "created_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "run_id": summary.get("run_id"),
        "experiment": summary.get("experiment"),
        "world_size": summary.get("world_size"),
        "provenance_document": C.PROV_DOCUMENT_TEMPLATE.format(
            experiment=summary.get("experiment"), run_id=summary.get("run_id")
        ),
        "summary": C.SUMMARY_FILENAME,
        "hosts": sorted({str(r.get("host")) for r in summary.get("ranks", [])}),
        "ranks": [
            {k: r.get(k) for k in ("rank", "host", "status", "wall_time_s", "steps")}
            for r in summary.get("ranks", [])
        ],
        "parameters": data.params(rank=0) if data.ranks else {},
        "results": [
            {k: m.get(k) for k in ("name", "context", "count", "last", "min", "max", "mean")}
            for m in summary.get("metrics", [])
        ],
        "models": [_card_item(a) for a in artifacts if a.get("kind") == "model"],
        "datasets": [_card_item(a) for a in artifacts if a.get("kind") == "dataset"],
        "energy": summary.get("energy", {}),
        "problems": summary.get("problems", []),
    }
    path = run_dir / CARD_FILENAME
    path.write_text(json.dumps(card, indent=1, default=str), encoding="utf-8")
    return path


def _card_item(artifact: dict[str, Any]) -> dict[str, Any]:
    return {k: artifact.get(k) for k in ("name", "rank", "path", "sha256", "role", "type") if k in artifact}


_FORMATS = {
    ".json": "application/json",
    ".h5": "application/x-hdf5",
    ".csv": "text/csv",
    ".dot": "text/vnd.graphviz",
    ".svg": "image/svg+xml",
    ".pt": "application/octet-stream",
}


def write_ro_crate(run_dir: Path) -> Path:
    """An RO-Crate 1.x of the run directory: every file in it, described where we know what it is."""
    try:
        from rocrate.rocrate import ROCrate
    except ImportError as exc:
        raise MissingDependencyError(
            'end_run(crate_ro_crate=True) needs the rocrate library: pip install "yprov4ml-hpc[rocrate]"'
        ) from exc
    run_dir = Path(run_dir)
    summary = json.loads((run_dir / C.SUMMARY_FILENAME).read_text(encoding="utf-8"))
    stale = run_dir / CRATE_METADATA
    if stale.exists():
        stale.unlink()  # a crate of an earlier merge must not describe itself
    crate = ROCrate(str(run_dir), init=True)
    crate.name = f"{summary.get('experiment')}_{summary.get('run_id')}"
    crate.description = (
        f"yprov4ml_hpc run {summary.get('run_id')} of experiment {summary.get('experiment')}, "
        f"{summary.get('world_size')} rank(s): PROV-JSON document, summary, rank files, artifacts"
    )
    crate.root_dataset["datePublished"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    prov_name = C.PROV_DOCUMENT_TEMPLATE.format(
        experiment=summary.get("experiment"), run_id=summary.get("run_id")
    )
    roles = {
        prov_name: "W3C PROV-JSON provenance document of the whole job",
        C.SUMMARY_FILENAME: "cross-rank JSON summary",
        CARD_FILENAME: "run card",
    }
    for entity in crate.data_entities:
        ident = str(entity.id)
        fmt = _FORMATS.get(Path(ident).suffix)
        if fmt and "File" in str(entity.type):
            entity["encodingFormat"] = fmt
        if ident in roles:
            entity["description"] = roles[ident]
        elif ident.startswith(f"{C.RANKS_DIRNAME}/") and ident.endswith(".h5"):
            entity["description"] = "rank file (HDF5): this rank's metric series, params, artifacts, events"
    crate.write(str(run_dir))
    return run_dir / CRATE_METADATA
