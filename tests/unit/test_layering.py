"""The architecture, enforced: folders of ``router`` depend one way, plug-ins use only the surface.

Read from the source with ``ast`` (nothing is imported), so a backwards import fails here with the
module and line that has it, not later as a circular import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from router import plugins

ROOT = Path(__file__).resolve().parents[2]

# Lower numbers sit lower: a module may import its own folder and any folder with a lower number.
LAYERS = {
    "errors": 0,
    "config": 1,
    "telemetry": 3,
    "functions": 3,
    "model": 2,
    "bus": 3,
    "rules": 4,
    "plugins": 5,
    "engine": 6,
    "web": 7,
    "subscriptions": 7,
    "edge": 8,
    "cli": 9,
}
MAX_MODULES_PER_FOLDER = 12
MAX_LINES_PER_MODULE = 400


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, imported module, names) of every import statement, relative ones resolved."""
    found = []
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            found.append((node.lineno, base, [alias.name for alias in node.names]))
    return found


def targets(module: str, names: list[str]) -> list[str]:
    """The router modules an import reaches: ``from router import errors`` reaches ``router.errors``."""
    if module in ("router", *(f"router.{folder}" for folder in LAYERS)) and names:
        return [f"{module}.{name}" for name in names]
    return [module]


def folder_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "router" else None


def router_modules() -> list[Path]:
    return sorted((ROOT / "router").rglob("*.py"))


def test_layers_cover_every_folder():
    folders = {p.name for p in (ROOT / "router").iterdir() if p.is_dir() and not p.name.startswith("__")}
    modules = {p.stem for p in (ROOT / "router").glob("*.py") if p.stem != "__init__"}
    assert folders | modules == set(LAYERS)


@pytest.mark.parametrize("path", router_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_router_imports_point_down(path):
    own = folder_of(module_name(path))
    if own is None:
        return  # router/__init__.py
    backwards = []
    for line, module, names in imports(path):
        for target in targets(module, names):
            other = folder_of(target)
            if other is not None and other != own and LAYERS[other] > LAYERS[own]:
                backwards.append(f"line {line}: {own} -> {target}")
    assert not backwards, "imports that run back up the layers"


@pytest.mark.parametrize("path", router_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_core_never_imports_plugins_or_tests(path):
    """Plug-ins are found by the catalog's load() alone; a string import elsewhere would hide one."""
    wrong = [f"line {line}: imports {module}" for line, module, _ in imports(path)
             if module.split(".")[0] in ("handlers", "tests")]
    if path != ROOT / "router/plugins/catalog.py":
        wrong += [f"line {node.lineno}: {ast.unparse(node.func)}()" for node in ast.walk(ast.parse(path.read_text()))
                  if isinstance(node, ast.Call) and ast.unparse(node.func) in (
                      "importlib.import_module", "__import__", "import_module")]
    assert not wrong


@pytest.mark.parametrize("path", sorted((ROOT / "handlers").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_plugins_use_only_names_of_the_surface(path):
    """``plugins.catalog.isolated()`` would reach past the surface as surely as an import would."""
    tree = ast.parse(path.read_text())
    bound = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
             and node.module == "router" for alias in node.names if alias.name == "plugins"}
    wrong = [f"line {node.lineno}: plugins.{node.attr}" for node in ast.walk(tree)
             if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in bound
             and node.attr not in plugins.__all__]
    assert not wrong


@pytest.mark.parametrize("path", sorted((ROOT / "handlers").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_plugins_import_only_the_public_surface(path):
    wrong = []
    for line, module, names in imports(path):
        if module == "router" and names == ["plugins"]:
            continue
        if module == "router.plugins":
            wrong += [f"line {line}: {name} is not in router.plugins.__all__" for name in names
                      if name not in plugins.__all__]
            continue
        if module == "router" or module.startswith("router."):
            wrong.append(f"line {line}: imports {module} (use router.plugins)")
    assert not wrong


def test_the_surface_exports_what_it_lists():
    missing = [name for name in plugins.__all__ if not hasattr(plugins, name)]
    assert not missing and len(set(plugins.__all__)) == len(plugins.__all__)


@pytest.mark.parametrize("path", sorted((ROOT / "router" / "cli").glob("*.py")), ids=lambda p: p.name)
def test_commands_reach_the_engine_only_through_queries(path):
    if path.name == "serve.py":  # the composition root builds the server out of edge and engine
        return
    reached = [f"line {line}: {target}" for line, module, names in imports(path) for target in targets(module, names)
               if folder_of(target) in ("engine", "edge") and target != "router.engine.queries"]
    assert not reached


def test_folders_are_small_and_say_what_they_own():
    problems = []
    for folder in sorted(p for p in (ROOT / "router").rglob("*") if p.is_dir() and p.name != "__pycache__"):
        modules = [p for p in folder.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
        if len(modules) > MAX_MODULES_PER_FOLDER:
            problems.append(f"{folder.relative_to(ROOT)} holds {len(modules)} modules")
        if not any(folder.glob("*.py")) and folder.parent.joinpath("__init__.py").exists():
            continue  # package data (router/web/templates, static): no code, the package's docstring covers it
        init = folder / "__init__.py"
        if not init.exists() or ast.get_docstring(ast.parse(init.read_text())) is None:
            problems.append(f"{folder.relative_to(ROOT)} has no docstring in __init__.py")
    assert not problems


def test_modules_are_small_and_open_with_a_docstring():
    problems = []
    for path in router_modules():
        text = path.read_text()
        if len(text.splitlines()) > MAX_LINES_PER_MODULE:
            problems.append(f"{path.relative_to(ROOT)} has {len(text.splitlines())} lines")
        if text.strip() and ast.get_docstring(ast.parse(text)) is None:
            problems.append(f"{path.relative_to(ROOT)} has no module docstring")
    assert not problems


def test_cesql_is_self_contained():
    """rules/cesql is a CloudEvents SQL engine that could be lifted out: it imports only itself."""
    outside = [f"{path.name} line {line}: {module}" for path in sorted((ROOT / "router/rules/cesql").glob("*.py"))
               for line, module, _ in imports(path)
               if module.startswith("router") and not module.startswith("router.rules.cesql")]
    assert not outside
