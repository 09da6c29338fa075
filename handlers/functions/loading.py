"""Finding a function by its ``ref`` (``package.module:callable``), once at rule load, and importing a
changed module again when the rules are reloaded.

A ref is resolved when its rule loads (``rules validate``, ``serve``'s start and every reload), so a
missing module, a missing attribute or something that is not callable is a rule error naming the
file, the rule and ``spec.action.function.ref``, never a surprise on the first matching event.
Runs look the function up in what loading found and never import anything themselves.

Reloading is all or nothing, like the rules: a module whose file changed since it was imported is
executed again as a *new* module object, and replaces the old one only if that succeeds. A failing
edit rejects the reload (the old rules and the old code keep serving), and a run already under way
keeps the function object it started with. Only the modules refs name are watched: a helper module
they import is imported once per process.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

from handlers.functions.settings import FunctionsSettings
from handlers.kubernetes import client as kube
from router import plugins

REF = re.compile(r"^(?P<module>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):(?P<attr>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)$")
LOADING = "loading"
"""Key of the validation context ``rules.load`` passes: only then may a changed module be re-imported."""

current = FunctionsSettings()
"""The loaded ``functions`` section (defaults until :func:`configure` ran)."""
_modules: dict[str, tuple[ModuleType, tuple]] = {}
"""Module name -> (the module in use, its file's stamp when it was imported)."""
_lock = threading.Lock()  # rule reloads run on worker threads


@plugins.on_settings("functions")
def configure(settings: plugins.Settings) -> None:
    global current
    current = settings.functions
    use_paths(current.paths)
    kube.configure(settings.kubernetes)  # ctx.kubernetes() outside `serve` (functions invoke) too


def use_paths(paths: list[Path]) -> None:
    """Put ``paths`` first on the import path (once each), in the order given."""
    for path in reversed([os.fspath(p) for p in paths]):
        if path in sys.path:
            sys.path.remove(path)
        sys.path.insert(0, path)
    importlib.invalidate_caches()


def resolve(ref: str, *, reload_changed: bool = False) -> Callable[..., Any]:
    """The callable ``ref`` names; ``ValueError`` saying why not (the rule error's message)."""
    match = REF.match(ref)
    if match is None:
        raise ValueError(f"{ref!r} is not a reference such as package.module:function")
    name, attr = match["module"], match["attr"]
    with _lock:
        module = _module(name, reload_changed)
    found: Any = module
    for part in attr.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise ValueError(f"module {name} ({_file(module)}) has no attribute {part!r}") from None
    if not callable(found):
        raise ValueError(f"{ref} is a {type(found).__name__}, not a callable")
    return found


def _module(name: str, reload_changed: bool) -> ModuleType:
    kept = _modules.get(name)
    if kept is not None:
        module, stamp = kept
        if not reload_changed or _stamp(module) == stamp:
            return module
        return _reimport(name, module)
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and not name.startswith(exc.name) and not exc.name.startswith(name.split(".")[0]):
            raise ValueError(f"importing {name} failed: {exc}") from exc  # the module's own import failed
        searched = ", ".join(os.fspath(p) for p in current.paths) or "none set"
        raise ValueError(f"no module named {exc.name or name!r} on functions.paths ({searched}) "
                         "nor among the installed packages") from exc
    except Exception as exc:  # a syntax error, a failing import-time statement: the author's to fix
        raise ValueError(f"importing {name} failed: {exc.__class__.__name__}: {exc}") from exc
    _modules[name] = (module, _stamp(module))
    return module


def _reimport(name: str, old: ModuleType) -> ModuleType:
    """``name`` executed again as a new module; ``old`` stays in place if that fails."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ValueError(f"module {name} ({_file(old)}) is gone")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up while it executes
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules[name] = old
        raise ValueError(f"re-importing changed {name} ({_file(old)}) failed: "
                         f"{exc.__class__.__name__}: {exc}") from exc
    _modules[name] = (module, _stamp(module))
    return module


def _file(module: ModuleType) -> str:
    return getattr(module, "__file__", None) or "built-in"


def _stamp(module: ModuleType) -> tuple:
    try:
        stat = Path(_file(module)).stat()
    except OSError:
        return ()
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)
