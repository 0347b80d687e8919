"""The layout rules of docs/architecture.md ("Parts and the imports between them"), checked on the source.

Every module's imports are read with `ast` (module level, inside functions and under
TYPE_CHECKING alike: a lazy import is still a dependency) and judged by four rules:

(a) Across parts, only a part's public surface may be imported: the part's package
    itself and the names its `__init__.py` lists in `__all__`, which may name
    re-exported objects and public submodules. Everything else in a part is private
    to it. `contract` is the shared library and all of it is public.
(b) No import cycle, neither between parts nor between modules.
(c) Imports run one way, as the table `MAY_IMPORT` says (the same table as the doc).
(d) pyproject's `[tool.setuptools] packages` lists every package folder, and
    `package-dir` maps every part; an import names a module that exists.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
PACKAGE_DIR: dict[str, str] = SETUPTOOLS["package-dir"]
COMMAND = "firewatch"
"""The part in firewatch/: the `firewatch` command (cli) and the process launcher (up, services)."""
SHARED = "contract"
PRODUCT = {"contract", "simulators", "ingest", "gateway", "alerting", "notify", "supervision", "dashboards", "api"}

MAY_IMPORT: dict[str, set[str]] = {
    "contract": set(),
    "simulators": {"contract", "gateway"},
    "ingest": {"contract"},
    "gateway": {"contract"},
    "alerting": {"contract"},
    "notify": {"contract"},
    "supervision": {"contract"},
    "dashboards": {"contract"},
    "api": {"contract", "alerting", "gateway", "notify", "supervision"},
    COMMAND: PRODUCT,
    "bench": PRODUCT | {COMMAND},
}
"""Which parts each part may import. Product code never imports bench/ nor the launcher."""

KNOWN: set[tuple[str, str]] = set()
"""Imports of another part's private modules tolerated while a part grows its public surface
(empty since notify has one). It only shrinks: an entry that no longer occurs fails the test too."""

KNOWN_CYCLE_EDGES: set[tuple[str, str]] = {
    ("firewatch.api.units", "firewatch.api.hazards"),  # a lazy import; visible_unit belongs in api/scope.py
    ("firewatch.simulators.chaos", "firewatch.simulators.stream"),  # Message, lazily: it belongs in its own module
}
"""Module imports closing a cycle that was there when the rule came; shrinks like KNOWN."""


@dataclass(frozen=True, slots=True)
class Import:
    source: str
    target: str
    line: int
    name: str = ""
    """For `from target import name` where name is not a submodule: the name taken from target."""


def part_of(module: str) -> str:
    names = module.split(".")
    return names[1] if len(names) > 1 and f"firewatch.{names[1]}" in PACKAGE_DIR else COMMAND


@cache
def modules() -> dict[str, Path]:
    """Every module of the installed namespace, by dotted name, from the folders package-dir maps."""
    out: dict[str, Path] = {}
    for package, folder in PACKAGE_DIR.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            names = path.relative_to(ROOT / folder).with_suffix("").parts
            if names[-1] == "__init__":
                names = names[:-1]
            out[".".join((package, *names))] = path
    return out


def _is_package(module: str) -> bool:
    return modules()[module].name == "__init__.py"


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> Iterator[tuple[str, str]]:
    """(module, name) pairs: the module an import loads, and the name it takes from it if any."""
    if isinstance(node, ast.Import):
        yield from ((a.name, "") for a in node.names)
        return
    base = node.module or ""
    if node.level:
        here = module.split(".") if _is_package(module) else module.split(".")[:-1]
        base = ".".join(here[: len(here) - node.level + 1] + ([base] if base else []))
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        yield (sub, "") if sub in modules() else (base, alias.name)


def _statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Top-level statements, including those under a top-level if/try (TYPE_CHECKING, fallbacks)."""
    for node in body:
        yield node
        if isinstance(node, ast.If | ast.Try):
            for block in (node.body, node.orelse, *(h.body for h in getattr(node, "handlers", ()))):
                yield from _statements(block)


@cache
def defined(module: str) -> frozenset[str]:
    """The names a module defines at its top level."""
    names: set[str] = set()
    for node in _statements(ast.parse(modules()[module].read_text(encoding="utf-8")).body):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
    return frozenset(names)


@cache
def imports() -> list[Import]:
    out = []
    for module, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                out += [Import(module, t, node.lineno, name) for t, name in _targets(module, node)
                        if t == "firewatch" or t.startswith("firewatch.")]
    return out


def public(part: str) -> set[str]:
    """The names a part's `__init__.py` lists in `__all__` (objects and submodules)."""
    path = modules()[f"firewatch.{part}"] if part != COMMAND else modules()["firewatch"]
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in node.targets):
            return set(ast.literal_eval(node.value))
    return set()


def _private_use(i: Import) -> bool:
    """True when `i` reaches past another part's public surface."""
    source, target = part_of(i.source), part_of(i.target)
    if source == target or target == SHARED:
        return False
    package = "firewatch" if target == COMMAND else f"firewatch.{target}"
    if i.target == package:
        return False
    first = i.target.removeprefix(package + ".").split(".")[0]
    return first not in public(target)


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle of `graph` as a path that starts and ends at the same node, or []."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return []


def _module_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for i in imports():
        if i.target != i.source and i.target in modules() and (i.source, i.target) not in KNOWN_CYCLE_EDGES:
            graph.setdefault(i.source, set()).add(i.target)
    return graph


def _where(i: Import) -> str:
    return f"{modules()[i.source].relative_to(ROOT)}:{i.line} imports {i.target}"


def test_every_import_names_a_module_and_a_name_that_exist() -> None:
    missing = [_where(i) + (f" {i.name}" if i.name else "") for i in imports()
               if i.target not in modules() or (i.name and i.name not in defined(i.target))]
    assert not missing, "\n".join(missing)


def test_parts_import_only_each_others_public_surface() -> None:
    private = {(i.source, i.target): i for i in imports() if _private_use(i)}
    new = [_where(i) for key, i in sorted(private.items()) if key not in KNOWN]
    assert not new, "private modules imported across parts (import the package or list the module "\
        "in its __all__):\n" + "\n".join(new)
    gone = sorted(KNOWN - private.keys())
    assert not gone, "no longer imported, take them off KNOWN: " + ", ".join(map(str, gone))


def test_imports_run_one_way() -> None:
    wrong = [f"{_where(i)} ({part_of(i.source)} may import {', '.join(sorted(MAY_IMPORT[part_of(i.source)]))})"
             for i in imports() if part_of(i.source) != part_of(i.target)
             and part_of(i.target) not in MAY_IMPORT[part_of(i.source)]
             and (i.source, i.target) not in KNOWN]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle_between_parts() -> None:
    graph: dict[str, set[str]] = {}
    for i in imports():
        s, t = part_of(i.source), part_of(i.target)
        if s != t and (i.source, i.target) not in KNOWN:
            graph.setdefault(s, set()).add(t)
    assert not (cycle := _cycle(graph)), " → ".join(cycle)


def test_no_import_cycle_between_modules() -> None:
    assert not (cycle := _cycle(_module_graph())), " → ".join(cycle)
    edges = {(i.source, i.target) for i in imports()}
    assert KNOWN_CYCLE_EDGES <= edges, f"take them off KNOWN_CYCLE_EDGES: {KNOWN_CYCLE_EDGES - edges}"


def test_pyproject_lists_every_package_folder() -> None:
    listed = set(SETUPTOOLS["packages"])
    found = {m for m in modules() if _is_package(m)}
    assert found - listed == set(), f"package folders missing from [tool.setuptools] packages: {found - listed}"
    assert listed - found == set(), f"listed packages without a folder: {listed - found}"
    parts = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists() and p.name != "tests"}
    mapped = set(PACKAGE_DIR.values())
    assert parts <= mapped, f"top-level package folders not in package-dir: {parts - mapped}"


def test_the_rules_catch_what_they_are_for() -> None:
    """The checks themselves, on imports that break each rule."""
    assert _private_use(Import("firewatch.api.alerts", "firewatch.alerting.detect.panel", 1))
    assert not _private_use(Import("firewatch.api.alerts", "firewatch.contract.rules", 1))
    assert not _private_use(Import("firewatch.api.app", "firewatch.ingest", 1))
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}}) == []
    assert "bench" not in MAY_IMPORT["alerting"] and COMMAND not in MAY_IMPORT["api"]


@pytest.mark.parametrize("part", sorted(p for p in MAY_IMPORT if p not in (SHARED, COMMAND)))
def test_a_parts_public_names_exist(part: str) -> None:
    """What `__all__` promises is there: a submodule, or a name the package defines."""
    package = f"firewatch.{part}"
    missing = [n for n in public(part) if f"{package}.{n}" not in modules() and n not in defined(package)]
    assert not missing, f"{package}.__all__ names what is not there: {missing}"
