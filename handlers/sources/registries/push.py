"""From a registry's webhook to the events published for one pushed manifest.

Every adapter in this package ends the same way: it has found, in its registry's payload, that one
manifest was stored under ``<host>/<path>`` with a digest (and maybe a tag). :func:`events_for` turns
that into the registry's own CloudEvent (``data`` is the sender's payload, kept verbatim for reference)
and, for a tagged push, the ``artifact.published`` CDEvent linked to it (``plugins.artifacts``).

Untagged manifests get no artifact event unless ``registries.untagged`` is set: in a multi-architecture
push the per-platform manifests arrive first, by digest, and the index follows under the tag; a rule
that deploys "what was pushed to :v1" should fire once, for the index, not once per platform.

Every member an adapter reads goes through :func:`require` or :func:`optional` (a wrong JSON type
is a 400 naming the member, ``event_data.resources[0].tag``, not a crash); names that end up in a
request to the registry (tag resolution) must match the distribution spec's grammar
(:func:`repository_name`, :func:`tag_name`), so a payload cannot steer that request elsewhere.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from handlers.sources import payload as payloads
from router.plugins import Delivery, artifacts, errors, events


# The distribution spec's grammar of repository names and tags (``distribution/reference``).
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
# datetime.fromtimestamp's range (years 1-9999) in epoch seconds; beyond it a number is not a time.
_LATEST_EPOCH = 253402300799


def load_object(delivery: Delivery) -> dict[str, Any]:
    return payloads.load_object(delivery.body)


def require(payload: Any, *path: str | int, kind: type = str) -> Any:
    """The value at ``path``, or ``BadRequest`` naming the missing field (``push_data.tag``)."""
    node = payload
    for key in path:
        if isinstance(key, int):
            node = node[key] if isinstance(node, list) and len(node) > key else None
        else:
            node = node.get(key) if isinstance(node, dict) else None
    if node in (None, "") or not isinstance(node, kind):
        name = _name(path)
        raise errors.BadRequest(f"payload has no {name}" if node in (None, "")
                                else f"{name} must be a {kind.__name__}", field=name)
    return node


def optional(payload: Any, *path: str | int, kind: type = str) -> Any:
    """The value at ``path`` if it is a ``kind``; ``None`` if absent, null or ``""``;
    ``BadRequest`` naming the member when it is of another type."""
    node = payload
    for key in path:
        if isinstance(key, int):
            node = node[key] if isinstance(node, list) and len(node) > key else None
        else:
            node = node.get(key) if isinstance(node, dict) else None
    if node in (None, ""):
        return None
    if not isinstance(node, kind) or isinstance(node, bool):
        name = _name(path)
        raise errors.BadRequest(f"{name} must be a {kind.__name__}", field=name)
    return node


def repository_name(value: str, field: str, max_length: int = 255) -> str:
    if len(value) > max_length or not _REPOSITORY.match(value):
        raise errors.BadRequest(f"{field} is not a repository name (lowercase path components)", field=field)
    return value


def tag_name(value: str, field: str) -> str:
    if not _TAG.match(value):
        raise errors.BadRequest(f"{field} is not a tag (1-128 of A-Z, a-z, 0-9, '.', '_', '-')", field=field)
    return value


def digest(value: str, field: str) -> str:
    if not artifacts.is_digest(value):
        raise errors.BadRequest(f"{field} is not a sha256:<64 hex> digest", field=field)
    return value


def timestamp(value: Any) -> str | None:
    """RFC 3339 from an RFC 3339 string or from epoch seconds (Docker Hub, Harbor)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        if not 0 < value <= _LATEST_EPOCH:  # epoch milliseconds, 1e308: unreadable, so dropped
            return None
        return datetime.fromtimestamp(value, timezone.utc).isoformat().replace("+00:00", "Z")
    return events.rfc3339(value)


def _name(path: tuple[str | int, ...]) -> str:
    return ".".join(f"[{k}]" if isinstance(k, int) else k for k in path).replace(".[", "[")


def events_for(push: artifacts.Push, *, event_type: str, event_id: str, payload: Any,
               time: str | None, untagged: bool) -> list[events.CloudEvent]:
    attributes = {"id": event_id, "source": f"https://{push.repository.lower()}", "type": event_type,
                  "subject": push.tag or push.digest}
    if time:
        attributes["time"] = time
    original = events.make(attributes, payload)
    if push.tag is None and not untagged:
        return [original]
    return [original, artifacts.published(original, push)]
