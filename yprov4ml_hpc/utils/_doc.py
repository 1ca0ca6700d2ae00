"""Reading one of our PROV-JSON documents the way yProv4ML's getters read theirs."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .. import _constants as C
from .._errors import MissingDependencyError

__all__ = [
    "UPSTREAM_TYPES",
    "entities_of_type",
    "load_document",
    "pandas",
    "run_dir_of",
    "type_names",
    "unwrap",
]

# yProv4ML's entity types and ours: a script filtering by upstream's type finds ours.
UPSTREAM_TYPES = {
    "provml:Metric": "yprov4ml:MetricSeries",
    "provml:Model": "yprov4ml:Model",
    "provml:Dataset": "yprov4ml:Dataset",
    "provml:Parameter": "yprov4ml:Parameter",
    "provml:Artifact": "yprov4ml:Artifact",
}
_PATH_KEY = "__yprov4ml_hpc_path__"  # where load_document remembers the file it read


def pandas() -> Any:
    try:
        import pandas as pd
    except ImportError as exc:
        raise MissingDependencyError(
            'this getter returns a pandas DataFrame, as yProv4ML\'s does: pip install "yprov4ml-hpc[pandas]"'
        ) from exc
    return pd


def load_document(source: dict[str, Any] | str | os.PathLike[str]) -> dict[str, Any]:
    """A loaded document, a path to one, or a run directory (its ``prov_*.json``)."""
    if isinstance(source, dict):
        return source
    path = Path(os.fspath(source))
    if path.is_dir():
        found = sorted(path.glob("prov_*.json"))
        if not found:
            raise FileNotFoundError(
                f"{path} has no prov_*.json; run end_run() or `yprov4ml-hpc merge {path}`"
            )
        path = found[0]
    elif not path.exists():
        path = _upstream_rank_document(path)
    with path.open(encoding="utf-8") as handle:
        doc = json.load(handle)
    doc[_PATH_KEY] = str(path.resolve())
    return doc


def _upstream_rank_document(path: Path) -> Path:
    """Upstream writes one document per process, ``prov_<experiment>_GR<rank>_<N>.json``; the
    job's one document here is ``prov_<experiment>_<N>.json`` in the same folder: use it."""
    match = re.fullmatch(r"prov_(.+)_GR\d+_(\d+)\.json", path.name)
    if match is not None:
        job_document = path.with_name(f"prov_{match[1]}_{match[2]}.json")
        if job_document.is_file():
            return job_document
    return path  # opening it raises FileNotFoundError naming it


def unwrap(value: Any) -> Any:
    """A PROV typed literal (``{"$": "3", "type": "xsd:int"}``) as a Python value."""
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    if isinstance(value, dict) and "$" in value:
        raw, kind = value["$"], str(value.get("type", ""))
        try:
            if kind in ("xsd:int", "xsd:long", "xsd:integer"):
                return int(raw)
            if kind in ("xsd:double", "xsd:float", "xsd:decimal"):
                return float(raw)
            if kind == "xsd:boolean":
                return str(raw).lower() == "true"
        except ValueError:
            return raw
        return raw
    return value


def type_names(attrs: dict[str, Any]) -> set[str]:
    kinds = unwrap(attrs.get("prov:type"))
    return {str(k) for k in (kinds if isinstance(kinds, list) else [kinds]) if k is not None}


def entities_of_type(doc: dict[str, Any], entity_type: str) -> Iterator[tuple[str, dict[str, Any]]]:
    wanted = UPSTREAM_TYPES.get(entity_type, entity_type)
    for ident, attrs in doc.get("entity", {}).items():
        if wanted in type_names(attrs):
            yield ident, attrs


def run_dir_of(source: dict[str, Any] | str | os.PathLike[str]) -> Path:
    """The run directory of a document: next to its file, or (a loaded dict) found by its name."""
    if not isinstance(source, dict):
        path = Path(os.fspath(source))
        return path if path.is_dir() else path.parent
    remembered = source.get(_PATH_KEY)
    if remembered:
        return Path(remembered).parent
    urn = str(source.get("prefix", {}).get("run", ""))  # urn:yprov4ml-hpc:run:<dir name>:
    name = urn.rstrip(":").rsplit(":", 1)[-1] if urn else ""
    bases = [Path.cwd(), Path(os.environ.get(C.ENV_SAVE_DIR, C.DEFAULT_SAVE_DIR))]
    for base in bases:
        for candidate in (base / name, base / C.DEFAULT_SAVE_DIR / name):
            if name and (candidate / C.RANKS_DIRNAME).is_dir():
                return candidate
    raise FileNotFoundError(
        f"cannot find the run directory {name!r} of this document from {Path.cwd()}; pass the "
        "document's path (or the run directory) instead of the loaded dict"
    )
