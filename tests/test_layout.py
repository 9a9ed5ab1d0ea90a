"""The import graph of focal_pl flows one way: data, losses, clustering, metrics at the bottom;
module and evaluation above; the commands on top. No circle, no upward arrow (imports inside
functions count: a lazy import is still a dependency)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "focal_pl"
# the first component under focal_pl -> its layer; an import may only go to the same or a lower one
LAYERS = {
    "__init__": 0, "__main__": 4, "masks": 0, "shipped": 0, "atomic": 0, "internals": 0, "noise": 0, "metrics": 1, "visualize": 1,
    "checkpoint_io": 1, "checkpoints": 1, "stopping": 1, "distributed": 1, "provenance": 1, "progress": 1,
    "release": 2,
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


# the package root's facade: ``focal_pl.load`` (DESIGN.md's entry point for a released model)
# imports the release module when it is called; nothing imports the root for it
FACADE = {("focal_pl", "focal_pl.release")}


def upward_imports(edges: dict[str, set[str]]) -> list[str]:
    return [f"{a} -> {b}" for a, targets in edges.items() for b in targets
            if layer(b) > layer(a) and (a, b) not in FACADE]


def find_circle(edges: dict[str, set[str]]) -> list[str] | None:
    """A cycle of imports, or None (a package importing its own submodules is no circle)."""
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
            if cycle:
                return cycle
    return None


def test_no_import_goes_up_a_layer():
    upward = upward_imports(graph())
    assert not upward, upward


def test_the_import_graph_has_no_circle():
    cycle = find_circle(graph())
    assert cycle is None, " -> ".join(cycle)


def test_the_checker_sees_a_circle_and_an_upward_import():
    """The two checks fail on a bad graph: this package's graph with one arrow added each way."""
    edges = graph()
    upward = {**edges, "focal_pl.clustering.core": edges["focal_pl.clustering.core"] | {"focal_pl.module"}}
    assert upward_imports(upward) == ["focal_pl.clustering.core -> focal_pl.module"]
    assert "focal_pl.masks" in edges["focal_pl.evaluation.scoring"]  # scoring -> masks, then masks -> scoring:
    circled = {**edges, "focal_pl.masks": edges["focal_pl.masks"] | {"focal_pl.evaluation.scoring"}}
    cycle = find_circle(circled)
    assert cycle is not None and cycle[0] == cycle[-1] and {"focal_pl.masks", "focal_pl.evaluation.scoring"} <= set(cycle)
