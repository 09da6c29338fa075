"""Drift: a workload's ``spec`` changed by someone who is not a deployer (``kubectl edit`` in production).

Nothing fails when a person edits a live Deployment; the next pipeline run silently undoes it, or
never runs. The apiserver already records who wrote what: every write names its field manager, and
``metadata.managedFields`` lists, per manager and operation, the fields it owns (``FieldsV1``) and
when it last changed one of them. This module turns that record into a ``drifted`` transition:

- the watch remembers the workload's ``spec`` in its summary (:func:`remember`), so a change can be
  reported with the value before and after;
- on a new generation, every ``managedFields`` entry of a manager that is not a configured deployer
  is walked: each leaf it owns under ``spec`` whose value differs between the remembered spec and
  the new one is a changed path. A manager with changed paths is one ``drifted`` transition
  (manager, operation, time, paths, old/new values).

Ownership moves with an ``Update``: after ``kubectl edit`` sets ``replicas``, ``kubectl-edit`` owns
``f:spec.f:replicas``; when helm sets it back, helm does. So a change is attributed to whoever the
apiserver says owns the field *now*, and a deployer's change is never drift. A field a drift manager
*removed* is owned by no one afterwards and is not reported (a known limit: the record has no owner
for it).

Identity: (generation, manager, operation): every replica, and a re-list after a gap, derive the
same event id. Values that may carry credentials (an env var's ``value``, anything in a Secret) are
never copied into an event, only their path; long values are replaced by a fingerprint.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterator

from handlers.sources.kubernetes.transitions import Summary, Transition, fingerprint

MAX_VALUE_BYTES = 512
"""A value longer than this as JSON is reported as ``{"fingerprint": ...}``, not copied."""

_MISSING = object()
_SECRET_NAME = re.compile(r"(?i)pass|secret|token|key|credential|auth")


def remember(obj: dict[str, Any]) -> Summary:
    """What drift detection keeps in the object's summary: its spec and generation."""
    return {"generation": obj["metadata"].get("generation", 0), "spec": obj.get("spec") or {}}


def _leaves(fields: dict[str, Any], prefix: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    for key, child in fields.items():
        if key == ".":
            continue
        if isinstance(child, dict) and set(child) - {"."}:
            yield from _leaves(child, prefix + (key,))
        else:
            yield prefix + (key,)


def _step(document: Any, segment: str) -> Any:
    kind, _, rest = segment.partition(":")
    if kind == "f":
        return document.get(rest, _MISSING) if isinstance(document, dict) else _MISSING
    if not isinstance(document, list):
        return _MISSING
    if kind == "k":
        keys = json.loads(rest)
        return next((item for item in document if isinstance(item, dict)
                     and all(item.get(k) == v for k, v in keys.items())), _MISSING)
    if kind == "v":
        value = json.loads(rest)
        return value if value in document else _MISSING
    if kind == "i":
        index = int(rest)
        return document[index] if index < len(document) else _MISSING
    return _MISSING


def resolve(document: Any, segments: tuple[str, ...]) -> Any:
    """The value at a FieldsV1 path (``f:spec``, ``k:{"name":"app"}``, ``v:...``, ``i:0``), or a sentinel."""
    for segment in segments:
        document = _step(document, segment)
        if document is _MISSING:
            return _MISSING
    return document


def readable(segments: tuple[str, ...]) -> str:
    """``spec.template.spec.containers[name=app].image`` for the FieldsV1 segments of that field."""
    out = ""
    for segment in segments:
        kind, _, rest = segment.partition(":")
        if kind == "f":
            out += f".{rest}" if out else rest
        elif kind == "k":
            out += "[" + ",".join(f"{k}={v}" for k, v in json.loads(rest).items()) + "]"
        elif kind == "v":
            out += f"[={json.loads(rest)}]"
        else:
            out += f"[{rest}]"
    return out


def _secret(kind: str, path: str) -> bool:
    if kind == "Secret":
        return True
    # An env var's literal value is where credentials end up when they are not in a Secret.
    return ".env[" in path and (path.endswith(".value") or bool(_SECRET_NAME.search(path.split(".env[")[-1])))


def _shown(value: Any) -> Any:
    if value is _MISSING:
        return None
    encoded = json.dumps(value, sort_keys=True)
    return value if len(encoded) <= MAX_VALUE_BYTES else {"fingerprint": fingerprint(value)}


def changes(kind: str, entry: dict[str, Any], old_spec: dict[str, Any], new_spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The fields under ``spec`` owned by this managedFields entry whose value changed."""
    fields = (entry.get("fieldsV1") or {}).get("f:spec")
    if entry.get("fieldsType", "FieldsV1") != "FieldsV1" or not isinstance(fields, dict):
        return []
    found = []
    for segments in _leaves(fields, ("f:spec",)):
        before, after = resolve({"spec": old_spec}, segments), resolve({"spec": new_spec}, segments)
        if before == after:
            continue
        path = readable(segments)
        change: dict[str, Any] = {"path": path}
        if _secret(kind, path):
            change["redacted"] = True
        else:
            change.update({"from": _shown(before), "to": _shown(after)})
        found.append(change)
    return sorted(found, key=lambda change: change["path"])


def transitions(old: Summary | None, new: Summary, obj: dict[str, Any], deployers: frozenset[str]) -> list[Transition]:
    """``drifted`` per non-deployer manager that changed ``spec`` fields since the remembered spec."""
    before, after = (old or {}).get("drift"), new.get("drift")
    if not before or not after or before["generation"] == after["generation"]:
        return []  # first sight (baseline or an object stored by an older release), or no spec change
    found = []
    for entry in obj["metadata"].get("managedFields") or []:
        manager = entry.get("manager") or "unknown"
        if manager in deployers:
            continue
        changed = changes(obj.get("kind", ""), entry, before["spec"], after["spec"])
        if not changed:
            continue
        operation = entry.get("operation")
        found.append(Transition("drifted", f"{after['generation']}:{manager}:{operation}", {
            "manager": manager, "operation": operation, "subresource": entry.get("subresource") or None,
            "time": entry.get("time"), "paths": [change["path"] for change in changed], "changes": changed}))
    return found
