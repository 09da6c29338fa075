"""Reading fields out of sender payloads without a KeyError for every optional member."""

from __future__ import annotations

import json
from typing import Any

from router.plugins import errors


def load_object(body: bytes) -> dict[str, Any]:
    """The webhook body as a JSON object, or ``BadRequest`` saying what is wrong with it."""
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise errors.BadRequest(f"body is not valid JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise errors.BadRequest("body must be a JSON object")
    return payload


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
