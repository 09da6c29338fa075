"""HTML from templates: one Jinja2 environment, autoescaping on for every template.

Everything a page shows may come from a webhook sender (event ids, sources, payloads, check output
quoting a response body), so escaping is not optional: autoescape is on for every template
whatever its name, values are marked safe only where this package made the markup itself (the SVG
of ``charts``), and ``StrictUndefined`` makes a misspelt variable an error in the tests rather than
an empty cell. Templates and the stylesheet are files of this package, so the pages need nothing
from the network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from router.web.history import iso

__all__ = ["STYLESHEET", "render", "seconds"]

HERE = Path(__file__).resolve().parent
STYLESHEET = HERE / "static" / "web.css"


def seconds(value: float | None) -> str:
    """A duration for people: ``0.042 s``, ``12.5 s``, ``3 min 20 s``, ``2 h 5 min``."""
    if value is None:
        return "-"
    if value < 1:
        return f"{value:.3f} s"
    if value < 60:
        return f"{value:.1f} s"
    if value < 3600:
        return f"{int(value // 60)} min {int(value % 60)} s"
    return f"{int(value // 3600)} h {int(value % 3600 // 60)} min"


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


_environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,  # every template, not only *.html: nothing here is ever rendered unescaped
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_environment.filters.update(iso=iso, seconds=seconds, percent=percent)


def render(template: str, **context: Any) -> str:
    return _environment.get_template(template).render(**context)
