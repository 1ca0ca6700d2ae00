"""Extract the public signatures of yProv4ML wheels into upstream_signatures.json (data, not code).

    pip download --no-deps yprov4ml==2.0.10 -d /tmp/yp && unzip ... -d /tmp/yp/v2.0.10
    python tests/compat/extract_signatures.py 2.0.10=/tmp/yp/v2.0.10 3.2.8=/tmp/yp/v3.2.8

The wheels are parsed with ``ast`` (never imported: they need torch, zarr, netCDF4): for
every name the package's ``__init__`` exposes, and for the ``utils`` getter modules, the
parameter names in order, their kinds and whether they have a default.  Only these facts are
kept; no upstream code is copied.
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
OUT = HERE / "upstream_signatures.json"

# Which upstream modules make up the public surface (what `import yprov4ml` exposes, plus utils).
TOP_MODULES = {
    "2.0.10": ["logging_aux", "yprov4ml"],
    "3.2.8": ["logging_aux", "functs"],
}
TOP_CLASSES = {
    "2.0.10": {
        "Context": "datamodel/context",
        "ProvMLLogger": "loggers/prov4ml_logger",
        "ProvMLItwinAILogger": "loggers/prov4ml_itwinai_logger",
        "LoggingItemKind": "datamodel/attribute_type",
        "MetricsType": "datamodel/metric_type",
        "CompressorType": "datamodel/compressor_type",
    },
    "3.2.8": {
        "ProvenanceTrackedFunction": "wrappers/tracked_function",
        "ProvenanceTrackedModel": "wrappers/tracked_model",
        "WeightDistributionTrackedModel": "wrappers/tracked_layers",
        "CompressorType": "datamodel/compressor_type",
        "ProvMLLogger": "loggers/prov4ml_logger",
        "ProvMLItwinAILogger": "loggers/prov4ml_itwinai_logger",
    },
}
UTILS = {"2.0.10": ["prov_getters"], "3.2.8": ["getters"]}


def _params(args: ast.arguments, skip_self: bool) -> list[dict[str, object]]:
    positional = [*args.posonlyargs, *args.args]
    if skip_self and positional:
        positional = positional[1:]
    first_default = len(positional) - len(args.defaults)
    out: list[dict[str, object]] = [
        {"name": a.arg, "kind": "positional", "has_default": i >= first_default}
        for i, a in enumerate(positional)
    ]
    out += [
        {"name": a.arg, "kind": "keyword_only", "has_default": d is not None}
        for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)
    ]
    if args.vararg:
        out.append({"name": args.vararg.arg, "kind": "var_positional", "has_default": True})
    if args.kwarg:
        out.append({"name": args.kwarg.arg, "kind": "var_keyword", "has_default": True})
    return out


def _functions(path: Path) -> dict[str, list[dict[str, object]]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.name: _params(node.args, skip_self=False)
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_")
    }


def _class(path: Path, name: str) -> dict[str, object]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            init = next(
                (n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None
            )
            members = [
                t.id
                for n in node.body
                if isinstance(n, ast.Assign)
                for t in n.targets
                if isinstance(t, ast.Name) and t.id.isupper()
            ]
            methods = {
                n.name: _params(n.args, skip_self=True)
                for n in node.body
                if isinstance(n, ast.FunctionDef) and not n.name.startswith("_")
            }
            return {
                "init": None if init is None else _params(init.args, skip_self=True),
                "members": members,
                "methods": methods,
            }
    raise KeyError(f"{name} not in {path}")


def extract(version: str, root: Path) -> dict[str, object]:
    pkg = root / "yprov4ml"
    functions: dict[str, list[dict[str, object]]] = {}
    for module in TOP_MODULES[version]:
        functions.update(_functions(pkg / f"{module}.py"))
    classes = {name: _class(pkg / f"{mod}.py", name) for name, mod in TOP_CLASSES[version].items()}
    utils = {mod: _functions(pkg / "utils" / f"{mod}.py") for mod in UTILS[version]}
    return {"functions": functions, "classes": classes, "utils": utils}


def main(argv: list[str]) -> None:
    data = {}
    for spec in argv:
        version, _, root = spec.partition("=")
        data[version] = extract(version, Path(root))
    OUT.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main(sys.argv[1:])
