"""The package's modules import each other without cycles: every ``import`` counts, also one
inside a function (a lazy import that closes a loop is still a loop a reader must untangle);
only ``if TYPE_CHECKING:`` blocks are left out (annotations, never run)."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

import yprov4ml_hpc

PACKAGE = Path(yprov4ml_hpc.__file__).parent
NAME = "yprov4ml_hpc"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    if node.level == 0:
        base = node.module or ""
    else:
        parts = module.split(".")
        keep = len(parts) - node.level + (1 if is_package else 0)
        base = ".".join(parts[:keep] + ([node.module] if node.module else []))
    # `from . import _x` imports the submodule _x; `from ._x import name` imports _x.
    return [f"{base}.{alias.name}" for alias in node.names] + [base]


class _Imports(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool) -> None:
        self.module, self.is_package, self.found = module, is_package, set()

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        if (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
            isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
        ):
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self.found.update(alias.name for alias in node.names)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        self.found.update(_resolve(self.module, self.is_package, node))


def import_graph() -> nx.DiGraph:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for module, path in modules.items():
        visitor = _Imports(module, path.name == "__init__.py")
        visitor.visit(ast.parse(path.read_text(encoding="utf-8")))
        for target in visitor.found:
            if target in modules and target != module and not module.startswith(f"{target}."):
                graph.add_edge(module, target)
    return graph


def test_the_resolver_sees_relative_and_lazy_imports() -> None:
    graph = import_graph()
    assert graph.has_edge("yprov4ml_hpc._api", "yprov4ml_hpc._run")  # top level
    assert graph.has_edge("yprov4ml_hpc._run", "yprov4ml_hpc._finalize")  # inside Run.end
    assert graph.has_edge("yprov4ml_hpc._merge._build", "yprov4ml_hpc._reader")


def test_no_import_cycle() -> None:
    # A package's __init__ importing its own submodules is not a cycle of the design: the
    # edge from a submodule to its parent package is left out above.
    cycles = list(nx.simple_cycles(import_graph()))
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c + c[:1]) for c in cycles)


def test_the_run_ends_itself_without_the_facade() -> None:
    graph = import_graph()
    for module in ("yprov4ml_hpc._run", "yprov4ml_hpc._lifecycle", "yprov4ml_hpc._finalize"):
        assert not graph.has_edge(module, "yprov4ml_hpc._api"), module
    assert not graph.has_edge("yprov4ml_hpc.integrations.lightning", "yprov4ml_hpc._finalize")
