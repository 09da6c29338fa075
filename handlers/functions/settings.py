"""The ``functions`` settings section: where function modules are found and which secrets they may read.

Owned by the plug-in, like every plug-in's section (``settings.py`` of the core is full, and no core
module needs it); ``loading.configure`` puts ``paths`` on the import path before any rule is loaded.
"""

from __future__ import annotations

from pathlib import Path

from router import plugins
from router.plugins import Section


@plugins.settings_section("functions")
class FunctionsSettings(Section):
    """In-process Python functions (``action: function``)."""

    paths: list[Path] = []
    """Directories put first on the import path: a ``ref`` ``pkg.mod:fn`` is found in them, else
    among the installed packages."""
    secrets_dir: Path | None = None
    """``ctx.secret(name)`` reads the file ``<secrets_dir>/<name>`` (a mounted Secret's keys)."""
    secrets: dict[str, Path] = {}
    """``name -> file`` for secrets elsewhere; takes precedence over ``secrets_dir``."""
