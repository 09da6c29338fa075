"""``{{ <CEL> }}`` templates in action parameters, rendered against the triggering event.

Sandboxed by construction: the only thing a template can do is evaluate a CEL expression over the
event (no Python eval, no Jinja, no file or network access). A string that is exactly one template
keeps the expression's type (``"{{ data.replicas }}"`` renders as the integer); templates inside
longer strings are formatted as text.
"""

from __future__ import annotations

import json
import re
from typing import Any

from router import errors
from router.model.events import CloudEvent
from router.rules import celexpr

_TEMPLATE = re.compile(r"\{\{(.*?)\}\}", re.S)


class Template:
    """A parameter tree with its templates compiled; ``render`` returns a fresh tree."""

    def __init__(self, tree: Any, path: str) -> None:
        self.tree = self._compile(tree, path)

    def _compile(self, node: Any, path: str) -> Any:
        if isinstance(node, str) and "{{" in node:
            parts: list[Any] = []
            position = 0
            for found in _TEMPLATE.finditer(node):
                parts.append(node[position:found.start()])
                parts.append(celexpr.compile(found.group(1).strip(), f"{path} (template {found.group(0)!r})"))
                position = found.end()
            parts.append(node[position:])
            if "{{" in parts[-1]:
                raise errors.RuleError("unterminated '{{' template", field=path)
            return _Compiled(parts, node)
        if isinstance(node, dict):
            return {k: self._compile(v, f"{path}.{k}") for k, v in node.items()}
        if isinstance(node, list):
            return [self._compile(v, f"{path}[{i}]") for i, v in enumerate(node)]
        return node

    def render(self, event: CloudEvent, extra: dict[str, Any] | None = None) -> Any:
        return _render(self.tree, event, extra)


class _Compiled:
    def __init__(self, parts: list[Any], source: str) -> None:
        self.parts = parts
        self.source = source


def _text(value: Any, source: str) -> str:
    """A value inside a longer string: strings as they are, the rest as JSON with sorted keys (a
    CEL map comes back in hash order: equal data must render to equal text). A timestamp, duration
    or bytes value has no JSON form: the run ends with a permanent error saying how to convert it."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise errors.PermanentError(f"template {source!r}: a {type(value).__name__} value cannot be written into "
                                    "text; convert it with string(...)") from exc


def _render(node: Any, event: CloudEvent, extra: dict[str, Any] | None = None) -> Any:
    if isinstance(node, _Compiled):
        values = []
        for part in node.parts:
            if isinstance(part, str):
                values.append(part)
                continue
            try:
                values.append(celexpr.evaluate(part, event, extra))
            except ValueError as exc:
                raise errors.PermanentError(f"template {node.source!r} failed: {exc}") from exc
        if len(values) == 3 and values[0] == "" and values[2] == "":
            return values[1]
        return "".join(_text(v, node.source) for v in values)
    if isinstance(node, dict):
        return {k: _render(v, event, extra) for k, v in node.items()}
    if isinstance(node, list):
        return [_render(v, event, extra) for v in node]
    return node
