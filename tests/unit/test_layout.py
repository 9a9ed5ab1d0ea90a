"""The import graph of focal_pl follows DESIGN.md's boundaries, checked one by one: the file layer
(``files``) and the core (``data``, ``losses``, ``clustering``, ``extractors``) at the bottom, the
run machinery (``training``) and ``evaluation`` above them, the LightningModules, the engine and
releases above those, the commands on top. Imports inside functions count: a lazy import is still
a dependency. The package root (``focal_pl.__version__``) may be imported by all; its only arrows
out are the two facades ``load`` and ``trainer``."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "focal_pl"
ROOT = "focal_pl"
# each package (the first name under focal_pl) and the packages it may import
ALLOWED: dict[str, set[str]] = {
    "internals": set(),
    "files": set(),
    "data": {"files"},
    "losses": set(),
    "clustering": set(),
    "extractors": {"files"},
    "training": {"files", "internals", "data"},  # data: its progress lines
    "evaluation": {"files", "data", "clustering", "training"},
    "module": {"files", "data", "losses", "clustering", "extractors", "training", "evaluation"},
    "engine": {"training", "evaluation"},
    "release": {"files", "data", "extractors", "training", "evaluation", "module"},
    "cli": {"files", "internals", "data", "losses", "clustering", "extractors", "training", "evaluation",
            "module", "engine", "release"},
    "__main__": {"cli"},
}
FACADES = {"release", "engine"}  # focal_pl.load and focal_pl.trainer, imported when called
CORE = ("losses", "clustering", "extractors")
MODEL = {"losses", "clustering", "extractors", "module", "evaluation", "training", "engine", "release"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve(name: str) -> bool:
    base = PACKAGE.parent.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imports(path: Path) -> set[str]:
    """The focal_pl modules a file imports anywhere in it (``from focal_pl.x import y`` counts as
    ``focal_pl.x.y`` when that is a module, else ``focal_pl.x``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(ROOT):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if resolve(candidate) else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith(ROOT)}
    return {m for m in found if resolve(m)}


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) for p in PACKAGE.rglob("*.py")}


def package(name: str) -> str:
    """``focal_pl.data.sources`` -> ``data``; the root itself -> ``focal_pl``."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ROOT


def crossings(edges: dict[str, set[str]]) -> list[tuple[str, str, str, str]]:
    """Every import from one package into another: (importer, imported, their packages)."""
    return [(a, b, package(a), package(b)) for a, targets in edges.items() for b in targets
            if package(a) != package(b)]


def forbidden(edges: dict[str, set[str]]) -> list[str]:
    """The imports ``ALLOWED`` does not allow (the root is allowed to all; from the root, the facades)."""
    bad = []
    for a, b, pa, pb in crossings(edges):
        if pb == ROOT and b == ROOT:
            continue
        if pa == ROOT:
            if pb not in FACADES:
                bad.append(f"{a} -> {b}")
        elif pb not in ALLOWED[pa]:
            bad.append(f"{a} -> {b}")
    return bad


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


def test_every_package_has_its_place_and_the_root_holds_little_else():
    packages = {package(n) for n in graph()}
    assert packages - {ROOT} == set(ALLOWED), sorted(packages - {ROOT} ^ set(ALLOWED))
    loose = sorted(p.stem for p in PACKAGE.glob("*.py"))
    assert loose == ["__init__", "__main__", "engine", "internals", "module", "release"], loose


def test_extractors_losses_and_clustering_import_none_of_each_other():
    edges = [(a, b) for a, b, pa, pb in crossings(graph()) if pa in CORE and pb in CORE]
    assert not edges, edges


def test_data_imports_no_model():
    edges = [(a, b) for a, b, pa, pb in crossings(graph()) if pa == "data" and pb in MODEL]
    assert not edges, edges


def test_nothing_but_the_commands_imports_the_cli():
    edges = [(a, b) for a, b, pa, pb in crossings(graph()) if pb == "cli" and pa not in ("cli", "__main__")]
    assert not edges, edges


def test_every_import_is_one_the_design_allows():
    bad = forbidden(graph())
    assert not bad, bad


def test_the_import_graph_has_no_circle():
    cycle = find_circle(graph())
    assert cycle is None, " -> ".join(cycle)


def test_the_checks_see_a_crossed_boundary_a_circle_and_an_upward_import():
    """Each check fails on a bad graph: this package's graph with one arrow added."""
    edges = graph()
    assert "focal_pl.losses.scl" in edges and "focal_pl.extractors.base" in edges
    core = {**edges, "focal_pl.extractors.vit": edges["focal_pl.extractors.vit"] | {"focal_pl.losses.scl"}}
    assert forbidden(core) == ["focal_pl.extractors.vit -> focal_pl.losses.scl"]
    upward = {**edges, "focal_pl.clustering.core": edges["focal_pl.clustering.core"] | {"focal_pl.module"}}
    assert forbidden(upward) == ["focal_pl.clustering.core -> focal_pl.module"]
    data = {**edges, "focal_pl.data.sources": edges["focal_pl.data.sources"] | {"focal_pl.training.runs"}}
    assert forbidden(data) == ["focal_pl.data.sources -> focal_pl.training.runs"]
    assert "focal_pl.evaluation.masks" in edges["focal_pl.evaluation.scoring"]  # scoring -> masks, then back:
    circled = {**edges, "focal_pl.evaluation.masks": edges["focal_pl.evaluation.masks"] | {"focal_pl.evaluation.scoring"}}
    cycle = find_circle(circled)
    assert cycle is not None and cycle[0] == cycle[-1]
    assert {"focal_pl.evaluation.masks", "focal_pl.evaluation.scoring"} <= set(cycle)
