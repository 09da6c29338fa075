"""The ``reporters:`` settings section: the parent of each reporter's own (``reporters.gitlab``).

A reporter owns its sub-section and registers it next to itself; this one only has to exist so the
sub-sections have a parent (nested sections need their parent registered).
"""

from __future__ import annotations

from router import plugins
from router.plugins import Section


@plugins.settings_section("reporters")
class ReportersSettings(Section):
    """Nothing of its own: each reporter's settings are a sub-section."""
