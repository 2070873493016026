"""The package's import structure (issue #20), read from the source with ``ast``, nothing imported:

* no import cycle between modules, counting imports inside functions. A lazy import only
  hides a loop from the interpreter at start-up: the two modules still need each other, so
  neither can be read, tested or moved on its own, and which one is half-initialised when the
  other runs depends on which is used first (the loop cli -> registry -> sql -> cli was one);
* no ``_private`` name of one module used by another (``from .x import _y`` or ``x._y`` on an
  imported module): what other modules need is public API, named and documented as such;
* the command line sits on top: only ``kpi_registry.cli`` imports argparse or the cli package.

Known violations are listed with the helper whose branch removes them; an entry that no longer
occurs fails the test too, so the lists only shrink.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "kpi_registry"

#: (importing module, imported module): why the edge is still there and who removes it.
#: Cycles are looked for without these edges.
ALLOWED_CYCLE_EDGES: dict[tuple[str, str], str] = {}

#: (importing module, module that defines the name, private name): who removes it.
ALLOWED_PRIVATE = {}

#: Modules outside kpi_registry.cli that still use argparse or the cli package: who moves it.
ALLOWED_COMMAND_LINE: dict[tuple[str, str], str] = {}


@dataclass
class Module:
    name: str
    path: Path
    imports: set[str] = field(default_factory=set)  # every module imported, anywhere in it
    private: set[tuple[str, str]] = field(default_factory=set)  # (module, _name) used


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def read_modules() -> dict[str, Module]:
    paths = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
    modules = {}
    for name, path in paths.items():
        module = Module(name, path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        bound: dict[str, str] = {}  # local name -> kpi_registry module it stands for
        for node in ast.walk(tree):  # every level: imports inside functions count too
            if isinstance(node, ast.Import):
                for alias in node.names:
                    module.imports.add(alias.name)
                    if alias.asname:
                        bound[alias.asname] = alias.name
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                for alias in node.names:
                    if f"{base}.{alias.name}" in paths:  # a submodule: `from . import x`
                        module.imports.add(f"{base}.{alias.name}")
                        bound[alias.asname or alias.name] = f"{base}.{alias.name}"
                        continue
                    module.imports.add(base)
                    if is_private(alias.name):
                        module.private.add((base, alias.name))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in bound
                and is_private(node.attr)
            ):
                module.private.add((bound[node.value.id], node.attr))
        module.imports.discard(name)
        modules[name] = module
    return modules


def cycles(graph: dict[str, set[str]]) -> Iterator[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    yield sorted(component)


def import_graph(modules: dict[str, Module], skip=frozenset()) -> dict[str, set[str]]:
    return {
        name: {
            target for target in module.imports if target in modules and (name, target) not in skip
        }
        for name, module in modules.items()
    }


def test_the_reader_sees_relative_absolute_and_function_level_imports():
    modules = read_modules()
    registry = modules["kpi_registry.registry"].imports
    assert "kpi_registry.sql" in registry  # `from .sql import compile_many` inside a method
    assert "kpi_registry.errors" in registry  # module level, relative
    assert "kpi_registry.cli.args" in modules["kpi_registry.cli.browse"].imports
    sql = modules["kpi_registry.sql"].imports
    assert "kpi_registry.sql.compiler" in sql  # inside its lazy __getattr__
    assert list(cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}})) == [["a", "b", "c"]]


def test_no_import_cycle_between_modules():
    modules = read_modules()
    for edge in ALLOWED_CYCLE_EDGES:
        assert edge[1] in modules[edge[0]].imports, f"{edge} no longer occurs: remove it"
    found = list(cycles(import_graph(modules, skip=set(ALLOWED_CYCLE_EDGES))))
    assert found == [], "modules that import each other (also through functions): " + "; ".join(
        " <-> ".join(c) for c in found
    )


def test_no_private_name_crosses_modules():
    used = {
        (module.name, target, name)
        for module in read_modules().values()
        for target, name in module.private
    }
    unexpected = sorted(used - set(ALLOWED_PRIVATE))
    assert unexpected == [], "private names used by another module: " + ", ".join(
        f"{who} uses {where}.{name}" for who, where, name in unexpected
    )
    fixed = sorted(set(ALLOWED_PRIVATE) - used)
    assert fixed == [], f"fixed, remove from ALLOWED_PRIVATE: {fixed}"


def test_only_the_command_line_parses_arguments_or_imports_it():
    found = set()
    for module in read_modules().values():
        if module.name == "kpi_registry.__main__":  # the `kpi` command itself
            continue
        if module.name == "kpi_registry.cli" or module.name.startswith("kpi_registry.cli."):
            continue
        for target in module.imports:
            if target == "kpi_registry.cli" or target.startswith("kpi_registry.cli."):
                found.add((module.name, "kpi_registry.cli"))
            elif target == "argparse":
                found.add((module.name, target))
    assert sorted(found - set(ALLOWED_COMMAND_LINE)) == []
    assert sorted(set(ALLOWED_COMMAND_LINE) - found) == [], "fixed: remove from the allow-list"
