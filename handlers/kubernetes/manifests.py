"""Manifests against the real cluster: server-side dry-run apply, and what applying would change.

An offline schema check knows neither the cluster's CRDs, nor its defaulting, nor its admission
webhooks and policies. A server-side apply with ``dryRun=All`` runs all of them and stores nothing,
so its errors are the apiserver's own words (``.spec.replicas: expected numeric (int or float),
got string``) and its result is the object as it *would* be stored. Compared with the live object,
that result is what applying would change: for a manifest of the revision deployed earlier, drift
from the desired state.

The comparison leaves out what the server manages (``status``, ``metadata.managedFields``,
``resourceVersion``, ``generation``, ``uid``, timestamps, the revision annotations controllers
write). A Secret's ``data``/``stringData`` values are never put in a change, only their path: the
report of a check goes to outcomes, logs and reporters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import yaml

from handlers.kubernetes import client as kube
from router.plugins import errors

SERVER_METADATA = ("managedFields", "resourceVersion", "generation", "uid", "creationTimestamp", "selfLink",
                   "deletionTimestamp", "deletionGracePeriodSeconds")
SERVER_ANNOTATIONS = ("deployment.kubernetes.io/revision", "kubectl.kubernetes.io/last-applied-configuration")
SECRET_FIELDS = ("data", "stringData")
TYPED_PATCH_FAILED = "failed to create typed patch object"


def parse(text: str, where: str) -> list[dict[str, Any]]:
    """Every document of a (multi-document) YAML text; ``List`` kinds are unpacked."""
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise errors.PermanentError(f"{where}: not YAML: {exc}") from exc
    return flatten(documents, where)


def flatten(documents: Any, where: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for document in documents if isinstance(documents, list) else [documents]:
        if isinstance(document, dict) and document.get("kind", "").endswith("List") and "items" in document:
            found += flatten(document["items"], where)
        elif isinstance(document, dict) and document.get("apiVersion") and document.get("kind"):
            found.append(document)
        else:
            raise errors.PermanentError(f"{where}: every manifest needs apiVersion and kind (got {str(document)[:80]!r})")
    return found


def describe(obj: dict[str, Any]) -> str:
    metadata = obj.get("metadata") or {}
    scope = f"{metadata['namespace']}/" if metadata.get("namespace") else ""
    return f"{obj.get('kind')} {scope}{metadata.get('name')}"


@dataclass(frozen=True)
class Applied:
    """A manifest's dry-run apply: the object as the cluster would store it, and the live one (or None)."""

    result: dict[str, Any]
    live: dict[str, Any] | None


async def dry_run(client: kube.Client, obj: dict[str, Any], namespace: str | None, field_manager: str) -> Applied:
    """Server-side apply with ``dryRun=All`` (strict field validation); the apiserver's refusal raised as is."""
    group, _, version = obj["apiVersion"].rpartition("/")
    metadata = dict(obj.get("metadata") or {})
    obj = {**obj, "metadata": metadata}  # the caller's manifest stays as written
    _, namespaced = await client.resource(group, version, obj["kind"])
    if namespaced:
        metadata.setdefault("namespace", namespace or "default")
    path = await client.collection_path(group, version, obj["kind"], metadata.get("namespace") if namespaced else None)
    path = f"{path}/{metadata.get('name')}"
    try:
        live = await client.request("GET", path)
    except errors.KubernetesRefused as exc:
        if exc.status != 404:
            raise
        live = None
    try:
        result = await client.request("PATCH", path, body=obj, content_type="application/apply-patch+yaml", query={
            "dryRun": "All", "fieldManager": field_manager, "force": True, "fieldValidation": "Strict"})
    except errors.KubernetesUnavailable as exc:
        # An apply whose manifest does not fit the schema is answered 500 (the apiserver fails to
        # build the typed patch); it is the manifest that is wrong, and asking again cannot help.
        if exc.status == 500 and TYPED_PATCH_FAILED in exc.message:
            raise errors.KubernetesRefused(exc.status, exc.reason or "Invalid", exc.message) from exc
        raise
    return Applied(result, live)


def _comparable(obj: dict[str, Any]) -> dict[str, Any]:
    obj = {k: v for k, v in obj.items() if k != "status"}
    metadata = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in SERVER_METADATA}
    annotations = {k: v for k, v in (metadata.get("annotations") or {}).items() if k not in SERVER_ANNOTATIONS}
    if annotations:
        metadata["annotations"] = annotations
    else:
        metadata.pop("annotations", None)
    return {**obj, "metadata": metadata}


def _named(items: list[Any]) -> dict[str, Any] | None:
    """A list of objects that all have a distinct ``name`` (containers, env, ports), keyed by it."""
    if items and all(isinstance(i, dict) and "name" in i for i in items):
        keyed = {str(i["name"]): i for i in items}
        return keyed if len(keyed) == len(items) else None
    return None


def _walk(live: Any, desired: Any, path: str) -> Iterator[tuple[str, Any, Any]]:
    if isinstance(live, dict) and isinstance(desired, dict):
        for key in sorted(live.keys() | desired.keys()):
            yield from _walk(live.get(key, _ABSENT), desired.get(key, _ABSENT), f"{path}.{key}" if path else key)
        return
    if isinstance(live, list) and isinstance(desired, list):
        live_named, desired_named = _named(live), _named(desired)
        if live_named is not None and desired_named is not None:
            for name in sorted(live_named.keys() | desired_named.keys()):
                yield from _walk(live_named.get(name, _ABSENT), desired_named.get(name, _ABSENT), f"{path}[name={name}]")
            return
    if live != desired:
        yield path, live, desired


_ABSENT: Any = type("Absent", (), {"__repr__": lambda self: "absent"})()


def diff(applied: Applied) -> list[dict[str, Any]]:
    """What applying would change in the live object: ``[{path, live, desired}]``; none if it does not exist."""
    if applied.live is None:
        return []
    secret = applied.result.get("kind") == "Secret"
    changes = []
    for path, live, desired in _walk(_comparable(applied.live), _comparable(applied.result), ""):
        change: dict[str, Any] = {"path": path}
        if secret and path.split(".")[0] in SECRET_FIELDS:
            change["redacted"] = True  # a Secret's values never leave the cluster through a report
        else:
            change.update(live=None if live is _ABSENT else live, desired=None if desired is _ABSENT else desired)
        changes.append(change)
    return changes

