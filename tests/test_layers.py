"""The layers of the code keep their direction (ARCHITECTURE.md).

Imports are read from the source with ``ast`` (also those inside functions),
so a dependency cannot hide behind a late import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.helpers.common import REPO

# A package of jobs/ and what it may import from jobs/ (besides itself and
# "core": models, lifecycle, access, links, media and the other modules at
# the top of jobs/). Wiring (apps, urls, admin, management commands,
# templatetags) sits on top and may import anything in jobs/.
LAYERS = {
    "core": set(),
    "submission": set(),
    "notify": set(),
    "node": {"submission"},
    "web": {"submission", "node"},
    "api": {"submission", "node", "web"},
}
WIRING = {"apps", "urls", "admin", "management", "templatetags", "migrations"}


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, absolute, at any depth of the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            found.add(base)
            # "from jobs import lifecycle" imports the module jobs.lifecycle.
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def layer_of(module: str) -> str | None:
    """The layer of a module under jobs/, or None outside jobs/ (or for wiring)."""
    parts = module.split(".")
    if parts[0] != "jobs":
        return None
    if len(parts) == 1:
        return "core"
    if parts[1] in WIRING:
        return None
    return parts[1] if parts[1] in LAYERS else "core"


def source_files(folder: str):
    return sorted(p for p in (REPO / folder).rglob("*.py") if "migrations" not in p.parts)


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def jobs_imports() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in source_files("jobs")}


def is_module(name: str) -> bool:
    """Whether ``name`` is a module or package of jobs/ (not a class or function)."""
    path = REPO.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def test_the_layer_table_covers_every_package_of_jobs():
    packages = {p.name for p in (REPO / "jobs").iterdir() if (p / "__init__.py").is_file()}
    assert packages - WIRING == set(LAYERS) - {"core"}


def test_submission_rules_need_no_web_framework_and_no_higher_layer():
    for module, imported in jobs_imports().items():
        if layer_of(module) != "submission":
            continue
        for name in imported:
            assert not name.startswith("rest_framework"), f"{module} imports {name}"
            assert layer_of(name) in (None, "core", "submission"), f"{module} imports {name}"


def test_every_layer_imports_only_the_layers_below_it():
    wrong = []
    for module, imported in jobs_imports().items():
        layer = layer_of(module)
        if layer is None:
            continue
        allowed = LAYERS[layer] | {layer, "core"}
        for name in imported:
            target = layer_of(name)
            if target is not None and target not in allowed:
                wrong.append(f"{module} ({layer}) imports {name} ({target})")
    assert wrong == []


def test_core_imports_no_layer_above_it():
    for module, imported in jobs_imports().items():
        if layer_of(module) == "core":
            above = [n for n in imported if layer_of(n) not in (None, "core")]
            assert above == [], f"{module} imports {above}"


@pytest.mark.parametrize("folder", ["jobs", "accounts"])
def test_nothing_below_the_admin_app_imports_it(folder):
    for path in source_files(folder):
        found = [n for n in imports_of(path) if n.split(".")[0] == "systemadmin"]
        assert found == [], f"{path.relative_to(REPO)} imports {found}"


def package_of(module: str) -> str:
    """``jobs.node.engines.ffmpeg`` -> ``jobs.node.engines``; modules at the top of
    jobs/ -> ``jobs(core)``, which is not the parent of the layers."""
    parts = module.split(".")
    while len(parts) > 1 and not (REPO.joinpath(*parts) / "__init__.py").is_file():
        parts.pop()
    return "jobs(core)" if parts == ["jobs"] else ".".join(parts)


def test_there_are_no_import_cycles_between_packages_of_jobs():
    graph: dict[str, set[str]] = {}
    for module, imported in jobs_imports().items():
        here = package_of(module)
        for name in imported:
            if name.startswith("jobs") and layer_of(name) is not None \
                    and layer_of(module) is not None:
                there = package_of(name)
                # A package may use its own subpackages (node -> node.engines).
                if there != here and not there.startswith(here + "."):
                    graph.setdefault(here, set()).add(there)
    assert find_cycles(graph) == []


def find_cycles(graph: dict[str, set[str]]) -> list[str]:
    seen: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []

    def visit(node, path):
        seen[node] = 1
        for target in sorted(graph.get(node, ())):
            if seen.get(target) == 1:
                cycles.append(" -> ".join([*path[path.index(target):], target]))
            elif target not in seen:
                visit(target, [*path, target])
        seen[node] = 2

    for node in sorted(graph):
        if node not in seen:
            visit(node, [node])
    return cycles


def test_the_cycle_check_finds_a_cycle():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a -> b -> c -> a"]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_there_are_no_import_cycles_between_modules_of_jobs():
    graph = {}
    for module, imported in jobs_imports().items():
        # A package's __init__ importing its own modules is not a cycle.
        graph[module] = {n for n in imported if n.startswith("jobs.") and is_module(n)
                         and n != module and not n.startswith(module + ".")}
    assert find_cycles(graph) == []


def test_the_checks_see_late_imports_and_relative_imports(tmp_path, monkeypatch):
    # The test must fail for the shapes a cycle likes to hide in.
    source = tmp_path / "jobs" / "submission" / "sneaky.py"
    source.parent.mkdir(parents=True)
    source.write_text("def f():\n    from rest_framework import serializers\n"
                      "    from ..web import views\n    from jobs import lifecycle\n")
    monkeypatch.setattr(f"{__name__}.REPO", tmp_path)
    found = imports_of(source)
    assert "rest_framework" in found
    assert "jobs.web.views" in found
    assert "jobs.lifecycle" in found
    assert layer_of("jobs.web.views") == "web"
    assert layer_of("jobs.lifecycle") == "core"
    assert layer_of("jobs.management.commands.demo_setup") is None
