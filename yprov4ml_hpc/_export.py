"""Exports of a run: the PROV document in other serialisations, and the raw metrics as plain files.

- ``provn``, ``xml`` (PROV-XML), ``rdf`` (PROV-O as Turtle), ``jsonld`` (PROV-O as JSON-LD):
  the job's PROV-JSON read and re-serialised by the ``prov`` library (xml needs ``prov[xml]``).
- ``metrics-json``: every series of every rank and all params in one JSON file, values exactly
  as logged.  JSON has no NaN/inf, so non-finite values are the strings ``"NaN"``,
  ``"Infinity"`` and ``"-Infinity"`` (``float()`` reads them back exactly).
- ``csv``: one ``step,value,time_ns`` file per series and rank under
  ``<context>/<name>/rank_NNNNNN.csv`` (names escaped as in the rank files), plus ``series.csv``
  (the index) and ``params.csv``.  Floats are written with ``repr`` (round-trip exact).  A
  text cell (name, context, param) that starts with ``= + - @``, a tab or CR and is no number
  is written with a leading ``'`` so that a spreadsheet does not run it as a formula
  (:func:`spreadsheet_safe`); ``metrics-json`` keeps every name exactly.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Any

from . import _constants as C
from ._errors import ConfigError, MergeError
from ._names import escape_name
from ._output import output_folder, write_replacing
from ._reader import load_run

__all__ = ["FORMATS", "export", "find_document", "spreadsheet_safe"]

# format -> file suffix of the default output name (None: a directory)
FORMATS: dict[str, str | None] = {
    "provn": ".provn",
    "xml": ".xml",
    "rdf": ".ttl",
    "jsonld": ".jsonld",
    "metrics-json": ".json",
    "csv": None,
}


def find_document(run_dir: Path) -> Path:
    """The PROV-JSON document of a run (or merge output) directory."""
    summary = run_dir / C.SUMMARY_FILENAME
    if summary.is_file():
        try:
            info = json.loads(summary.read_text(encoding="utf-8"))
            named = run_dir / C.PROV_DOCUMENT_TEMPLATE.format(
                experiment=info["experiment"], run_id=info["run_id"]
            )
            if named.is_file():
                return named
        except (ValueError, KeyError, TypeError):
            pass
    found = sorted(run_dir.glob("prov_*.json"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise MergeError(f"no prov_*.json in {run_dir}; write it first with: yprov4ml-hpc merge {run_dir}")
    raise MergeError(f"several prov_*.json in {run_dir} and no summary.json naming one; pass -o to merge")


def _default_output(run_dir: Path, fmt: str, document: Path | None) -> Path:
    suffix = FORMATS[fmt]
    if suffix is None:
        return run_dir / "csv"
    if fmt == "metrics-json":
        return run_dir / "metrics.json"
    assert document is not None
    return document.with_suffix(suffix)


def _export_prov(document: Path, fmt: str, target: Path) -> None:
    import prov
    from prov.serializers import DoNotExist

    doc = prov.read(str(document), format="json")
    if doc is None:
        raise ConfigError(f"{document} holds no PROV document")
    text: str | bytes | None
    try:
        if fmt == "provn":
            text = doc.serialize(format="provn")
        elif fmt == "xml":
            text = doc.serialize(format="xml")
        else:
            text = doc.serialize(format="rdf", rdf_format="turtle" if fmt == "rdf" else "json-ld")
    except DoNotExist as exc:  # a missing extra, e.g. lxml for PROV-XML
        raise ConfigError(f"cannot write {fmt}: {exc}") from exc
    if text is None:
        raise ConfigError(f"the prov library wrote nothing for {fmt}")
    write_replacing(target, text if isinstance(text, str) else text.decode("utf-8"))


def _exact(value: float) -> float | str:
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _export_metrics_json(run_dir: Path, target: Path) -> None:
    data = load_run(run_dir)
    out: dict[str, Any] = {
        "schema": "yprov4ml_hpc/metrics",
        "schema_version": 1,
        "run_id": data.run_id,
        "experiment": data.experiment,
        "world_size": data.world_size,
        "params": {str(r.rank): data.params(r.rank) for r in data.ranks},
        "series": [
            {
                "name": s.name,
                "context": s.context,
                "rank": s.rank,
                "step": s.step.tolist(),
                "value": [_exact(v) for v in s.value.tolist()],
                "time_ns": s.time_ns.tolist(),
            }
            for s in data.iter_series()
        ],
    }
    write_replacing(target, json.dumps(out, ensure_ascii=False, allow_nan=False) + "\n")


# A spreadsheet evaluates a cell that starts with one of these as a formula (or a DDE command:
# "=cmd|' /C calc'!A0"), so a logged name or param must not start a cell with one.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(cell: Any) -> Any:
    """A text cell that a spreadsheet would read as a formula gets a leading ``'`` (OWASP's
    rule; spreadsheets then show the text as it is).  Numbers, and text that is a plain
    number (``-1.5``, ``-inf``), are left alone, so numeric columns stay numeric."""
    if not isinstance(cell, str) or not cell.startswith(_FORMULA_START):
        return cell
    try:
        float(cell)
    except ValueError:
        return "'" + cell
    return cell


def _csv_text(rows: Any) -> str:
    buffer = io.StringIO(newline="")
    csv.writer(buffer).writerows([spreadsheet_safe(cell) for cell in row] for row in rows)
    return buffer.getvalue()


def _export_csv(run_dir: Path, target: Path) -> None:
    data = load_run(run_dir)
    output_folder(target)
    index = []
    for s in data.iter_series():
        context, name = escape_name(s.context), escape_name(s.name)
        relative = Path(context, name, f"rank_{s.rank:06d}.csv")
        output_folder(target / context)
        output_folder(target / context / name)
        rows = zip(s.step.tolist(), map(repr, s.value.tolist()), s.time_ns.tolist(), strict=True)
        write_replacing(target / relative, _csv_text([["step", "value", "time_ns"], *rows]))
        index.append([s.name, s.context, s.rank, len(s), relative.as_posix()])
    write_replacing(target / "series.csv", _csv_text([["name", "context", "rank", "count", "file"], *index]))
    params: list[list[Any]] = [["rank", "name", "value_json", "type", "context"]]
    for rank in data.ranks:
        for record in data.meta(rank.rank).params:
            params.append(
                [
                    rank.rank,
                    record["name"],
                    json.dumps(record["value"], ensure_ascii=False),
                    record.get("type", ""),
                    record.get("context", ""),
                ]
            )
    write_replacing(target / "params.csv", _csv_text(params))


def export(run_dir: str | os.PathLike[str], fmt: str, output: str | os.PathLike[str] | None = None) -> Path:
    """Write ``run_dir`` in format ``fmt``; returns the file (or folder, for csv) written.

    ``output`` defaults to the run directory; an existing directory gets the default name.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    root = Path(run_dir)
    if not root.is_dir():
        raise ConfigError(f"{root} is not a directory; pass a run directory")
    prov_format = fmt in ("provn", "xml", "rdf", "jsonld")
    document = find_document(root) if prov_format else None
    if output is None:
        target = _default_output(root, fmt, document)
    else:
        target = Path(output)
        if FORMATS[fmt] is not None and target.is_dir():
            target = target / _default_output(root, fmt, document).name
    if FORMATS[fmt] is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
    if prov_format:
        assert document is not None
        _export_prov(document, fmt, target)
    elif fmt == "metrics-json":
        _export_metrics_json(root, target)
    else:
        _export_csv(root, target)
    return target
