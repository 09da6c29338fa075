"""Reading fields out of sender payloads without a KeyError for every optional member."""

from __future__ import annotations

from typing import Any


def dig(payload: Any, *path: str) -> Any:
    """``dig(p, "workflow_run", "head_sha")``: the value at ``path``, or ``None`` if any hop is missing."""
    node = payload
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def first(payload: Any, *paths: tuple[str, ...]) -> Any:
    """The first non-empty value among several paths."""
    for path in paths:
        value = dig(payload, *path)
        if value not in (None, ""):
            return value
    return None
