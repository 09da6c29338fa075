"""Reading fields out of sender payloads and headers without a crash for every odd value.

Payloads are the sender's, so any member can be missing, ``null``, or of another JSON type than the
sender documents; a header can hold any bytes. The readers here turn each of those into either
``None`` (absent, for optional members) or ``errors.BadRequest`` naming the member
(``workflow_run.conclusion``) or header, which the edge answers 400, never an ``AttributeError``
or ``TypeError`` (a 500). The body itself is read by ``events.load_json`` (strict UTF-8, bounded
nesting, finite numbers).
"""

from __future__ import annotations

import re
from typing import Any

from router.plugins import Delivery, errors, events

# A header that becomes an id or part of an event type: printable ASCII, no spaces, bounded.
_TOKEN = re.compile(r"^[\x21-\x7e]{1,256}$")


def load_object(body: bytes) -> dict[str, Any]:
    """The webhook body as a JSON object, or ``BadRequest`` saying what is wrong with it."""
    payload = events.load_json(body)
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


def first_path(payload: Any, *paths: tuple[str, ...]) -> tuple[Any, str | None]:
    """The first non-empty value among several paths, and the dotted name of where it was."""
    for path in paths:
        value = dig(payload, *path)
        if value not in (None, ""):
            return value, ".".join(path)
    return None, None


def scalar_text(payload: Any, *paths: tuple[str, ...]) -> str | None:
    """The first non-empty value among ``paths`` as text (numbers spelt out); an object or array
    there is ``BadRequest`` naming it, since it cannot be an attribute such as ``subject``."""
    value, where = first_path(payload, *paths)
    if value is None:
        return None
    if isinstance(value, (dict, list)):
        raise errors.BadRequest(f"{where} must be a string, not a JSON {_kind(value)}", field=where)
    return str(value)


def optional(node: Any, *path: str, kind: type = str, prefix: str = "") -> Any:
    """The value at ``path`` when it is a ``kind``; ``None`` when absent, ``null`` or ``""``;
    ``BadRequest`` naming ``prefix + path`` when it is something else."""
    value = dig(node, *path)
    if value is None or value == "":
        return None
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        where = prefix + ".".join(path)
        raise errors.BadRequest(f"{where} must be a {_KINDS.get(kind, kind.__name__)}, not a JSON {_kind(value)}",
                                field=where)
    return value


def header_token(delivery: Delivery, name: str) -> str | None:
    """A header that becomes an id: ``None`` when absent or empty, ``BadRequest`` when it is not
    1-256 printable ASCII characters (bytes that are not UTF-8 arrive as surrogates and fail too)."""
    value = delivery.headers.get(name)
    if not value:
        return None
    if not _TOKEN.match(value):
        raise errors.BadRequest(f"header {name} must be 1-256 printable ASCII characters without spaces",
                                field=name)
    return value


def safe_token(delivery: Delivery, *names: str) -> str:
    """The first of the headers ``names`` that is a valid token, else ``""``: for log lines (a
    delivery id), which must not fail or carry arbitrary bytes."""
    for name in names:
        value = delivery.headers.get(name)
        if value and _TOKEN.match(value):
            return value
    return ""


_KINDS = {str: "string", dict: "object", list: "array", int: "integer", bool: "boolean"}


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", dict: "object", list: "array"}.get(type(value), type(value).__name__)
