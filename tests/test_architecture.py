"""The house rules of the layout (docs/architecture.md: "Layout", "Layers"), checked on the
source with ``ast``: core ``elo/`` never imports the layers built on it (``search/``,
``baselines/``) and no two files import each other through any chain. Function size
is ruff's to police (C901, PLR0912, PLR0915 in pyproject.toml), not a line count."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: the repository's folders and the names they have inside ``elo`` (elo/<name> links)
MAPPED = ("tasks", "modalities", "search", "baselines", "configs")
PACKAGES = ("elo", *MAPPED)
UPPER = ("elo.search", "elo.baselines")  # layers built on the core


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for p in sorted((ROOT / pkg).rglob("*.py")):
            parts = p.relative_to(ROOT).with_suffix("").parts
            if pkg == "elo" and parts[1] in MAPPED:
                continue  # reached through a link: counted under its own folder
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name if pkg == "elo" else f"elo.{name}"] = p
    return out


def _layer(module: str) -> str:
    """``elo.search`` / ``elo.baselines`` (upper layers), ``elo.tasks`` ... or ``elo``."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 and parts[1] in MAPPED else "elo"


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The longest known module that ``name`` (a module or a name in one) refers to."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        mod = ".".join(parts[:i])
        if mod in MODULES:
            return mod
    return None


def _imported(module: str, path: Path) -> Iterator[str]:
    """Every module this file imports, at top level or inside functions."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*up, base] if base else up)
            names = [base, *(f"{base}.{a.name}" for a in node.names)]
        for n in names:
            target = _resolve(n)
            if target is not None and target != module:
                yield target


def _graph() -> dict[str, set[str]]:
    return {m: set(_imported(m, p)) for m, p in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one file (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def test_the_walker_sees_imports_inside_functions_and_relative_ones() -> None:
    """The checks below are only as good as the walker: it must see a lazy import in a
    function body (the code base imports torch / ray / search lazily) and resolve names
    imported from a module to that module."""
    graph = _graph()
    assert "elo.registry" in graph["elo.model.heads"]
    lazy = [m for m, p in MODULES.items() if "    from elo." in p.read_text(encoding="utf-8")]
    assert lazy and all(graph[m] for m in lazy)
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_core_never_imports_the_layers_built_on_it() -> None:
    graph = _graph()
    bad = sorted(
        f"{m} -> {t}"
        for m, targets in graph.items()
        if _layer(m) == "elo"
        for t in targets
        if _layer(t) in UPPER
    )
    assert not bad, f"core imports an upper layer: {bad}"


def test_no_import_cycle_between_files() -> None:
    assert _cycles(_graph()) == []
