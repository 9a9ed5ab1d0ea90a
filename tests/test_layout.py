"""The import graph of focal_pl flows one way: data, losses, clustering, metrics at the bottom;
module and evaluation above; the commands on top. No circle, no upward arrow (imports inside
functions count: a lazy import is still a dependency)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "focal_pl"
# the first component under focal_pl -> its layer; an import may only go to the same or a lower one
LAYERS = {
    "__init__": 0, "__main__": 4, "masks": 0, "shipped": 0, "atomic": 0, "metrics": 1, "visualize": 1,
    "checkpoint_io": 1, "checkpoints": 1, "stopping": 1, "distributed": 1, "provenance": 1,
    "data": 1, "losses": 1, "clustering": 1, "extractors": 1, "schedulers": 1, "runs": 1, "budget": 1,
    "loggers": 1, "evaluation": 2, "module": 2, "baseline": 2, "cli": 3,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """The focal_pl modules a file imports anywhere in it (``from focal_pl.x import y`` counts as
    ``focal_pl.x.y`` when that is a module, else ``focal_pl.x``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("focal_pl"):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if resolve(candidate) else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("focal_pl")}
    return {m for m in found if resolve(m)}


def resolve(name: str) -> bool:
    base = PACKAGE.parent.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) for p in PACKAGE.rglob("*.py")}


def layer(name: str) -> int:
    parts = name.split(".")
    return LAYERS[parts[1] if len(parts) > 1 else "__init__"]


def test_every_module_has_a_layer():
    assert {n.split(".")[1] for n in graph() if "." in n} <= set(LAYERS)


def test_no_import_goes_up_a_layer():
    upward = [f"{a} -> {b}" for a, targets in graph().items() for b in targets if layer(b) > layer(a)]
    assert not upward, upward


def test_the_import_graph_has_no_circle():
    edges = graph()
    # a package imports its own submodules (its __init__ re-exports them): not a circle
    edges = {a: {b for b in t if not b.startswith(a + ".")} for a, t in edges.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state:
            cycle = visit(start)
            assert cycle is None, " -> ".join(cycle)


def test_the_checker_sees_a_circle_and_an_upward_import():
    """The two checks above can fail: the graph of this very package has arrows of both kinds
    available to them (module -> clustering is downward; clustering -> module would be upward)."""
    edges = graph()
    assert "focal_pl.clustering" in edges["focal_pl.module"] or any(
        t.startswith("focal_pl.clustering") for t in edges["focal_pl.module"])
    assert layer("focal_pl.module") > layer("focal_pl.clustering.core")
