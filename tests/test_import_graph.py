"""Dependencies between radio_nas sub-packages point one way, counting every import (function-local
ones and ``TYPE_CHECKING`` ones too): cli -> validate -> search -> distill/measure -> models ->
config; simulate reads the sweep's rules from search (never the other way); report reads study
records; ``study`` (the record conventions) imports none of them."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "radio_nas"
BOTTOM = {
    "_config",
    "_util",
    "_shipped",
    "constants",
    "__init__",
}  # the package root, the config base and the shared helpers
# What each sub-package may import (besides BOTTOM and itself).
ALLOWED = {
    "cli": {"validate", "simulate", "search", "report", "study", "distill", "measure", "models"},
    "simulate": {"search", "study", "models"},
    "validate": {"search", "report", "study", "measure", "models"},
    "search": {"study", "distill", "measure", "models"},
    "report": {"study", "distill", "measure", "models"},
    "distill": {"study", "models", "measure"},
    "measure": {"models"},
    "models": set(),
    "study": set(),
    "_util": {"_config"},
    "_config": set(),
}


def import_graph() -> dict[str, set[str]]:
    """Sub-package -> the radio_nas sub-packages its modules import (any import statement)."""
    edges: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).parts
        src = parts[0] if len(parts) > 1 else parts[0].removesuffix(".py")
        if src in ("__init__", "__main__"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.ImportFrom) and node.level > 0:
                names = ["radio_nas." + ".".join((*parts[: len(parts) - node.level], *(node.module or "").split(".")))]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                pieces = name.split(".")
                if pieces[0] == "radio_nas" and len(pieces) > 1 and pieces[1] != src:
                    edges.setdefault(src, set()).add(pieces[1])
                elif pieces == ["radio_nas"]:
                    edges.setdefault(src, set()).add("__init__")
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    found = []

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(edges.get(node, ())):
            if nxt in path:
                found.append(path[path.index(nxt) :] + [nxt])
            elif len(path) < 12:
                visit(nxt, path + [nxt])

    for start in sorted(edges):
        visit(start, [start])
    return found


def test_no_import_cycles_between_sub_packages() -> None:
    edges = import_graph()
    edges.pop("__init__", None)
    assert _cycles({k: v - {"__init__"} for k, v in edges.items()}) == []


def test_dependencies_point_one_way() -> None:
    edges = import_graph()
    unexpected = {src: sorted(dst - ALLOWED.get(src, set()) - BOTTOM) for src, dst in edges.items() if src in ALLOWED}
    assert {k: v for k, v in unexpected.items() if v} == {}
    assert set(edges) - {"__init__"} <= set(ALLOWED), "a new sub-package needs its place in ALLOWED"


def test_the_checker_sees_function_local_imports(tmp_path: Path) -> None:
    # guard against a checker that cannot fail: a local import inside a function is an edge too
    tree = ast.parse("def f():\n    from radio_nas.report import pca\n")
    assert any(isinstance(n, ast.ImportFrom) and n.module == "radio_nas.report" for n in ast.walk(tree))
    edges = import_graph()
    assert "report" in edges["cli"]  # cli imports report only inside functions
