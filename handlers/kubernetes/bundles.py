"""Bundle snapshots: what a workload revision ran *with*, so a rollback restores all of it.

``kubectl rollout undo`` reverts the pod template only; the ConfigMaps and Secrets that changed
with it stay changed (Argo Rollouts has the same gap, argo-rollouts#1297). At every
``rollout_started`` the Kubernetes source records the revision now rolling out as a bundle: the pod
template, and the content of every ConfigMap and Secret it references (volumes, projected volumes,
``envFrom``, ``env.valueFrom``). The previous revision's bundle was recorded at *its* start, so the
store holds the last ``kubernetes.snapshots.keep`` revisions per workload, newest first.

The store is a **Secret per snapshot in the router's own namespace** (``kubernetes.snapshots.namespace``),
not the event bus: Secret data must never reach events, outcomes or logs, and a Secret is where the
cluster's RBAC and encryption at rest already protect such data. Events carry names and content
hashes only (:func:`summary`). A revision is the fingerprint of the pod template as the apiserver
stores it, so the restored template has the same revision as the one recorded.

A ConfigMap or Secret changed later *without* a new pod template is not a new revision: the snapshot
keeps the content seen when the rollout started (documented in docs/gates.md).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
from typing import Any, Iterator

from handlers.kubernetes import client as kube
from router.plugins import errors

log = logging.getLogger(__name__)

LABEL = "trigger-router.dev/snapshot-of"
MAX_BYTES = 900 * 1024
"""A Secret holds at most 1 MiB; a bigger bundle is refused when recorded, not at rollback."""


def revision(template: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(template, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def content_hash(data: Any) -> str:
    return "sha256:" + hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def workload_key(cluster: str, kind: str, namespace: str, name: str) -> str:
    return hashlib.sha256(f"{cluster}\x00{kind}\x00{namespace}\x00{name}".encode()).hexdigest()[:12]


def _sources(spec: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for volume in spec.get("volumes") or []:
        if (volume.get("configMap") or {}).get("name"):
            yield "configMaps", volume["configMap"]["name"]
        if (volume.get("secret") or {}).get("secretName"):
            yield "secrets", volume["secret"]["secretName"]
        for projected in (volume.get("projected") or {}).get("sources") or []:
            if (projected.get("configMap") or {}).get("name"):
                yield "configMaps", projected["configMap"]["name"]
            if (projected.get("secret") or {}).get("name"):
                yield "secrets", projected["secret"]["name"]
    for container in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        for source in container.get("envFrom") or []:
            if (source.get("configMapRef") or {}).get("name"):
                yield "configMaps", source["configMapRef"]["name"]
            if (source.get("secretRef") or {}).get("name"):
                yield "secrets", source["secretRef"]["name"]
        for variable in container.get("env") or []:
            origin = variable.get("valueFrom") or {}
            if (origin.get("configMapKeyRef") or {}).get("name"):
                yield "configMaps", origin["configMapKeyRef"]["name"]
            if (origin.get("secretKeyRef") or {}).get("name"):
                yield "secrets", origin["secretKeyRef"]["name"]


def references(template: dict[str, Any]) -> dict[str, list[str]]:
    """``{"configMaps": [...], "secrets": [...]}`` the pod template reads, sorted, each once."""
    found: dict[str, set[str]] = {"configMaps": set(), "secrets": set()}
    for kind, name in _sources(template.get("spec") or {}):
        found[kind].add(name)
    return {kind: sorted(names) for kind, names in found.items()}


def summary(bundle: dict[str, Any]) -> dict[str, Any]:
    """What events and outcomes may say about a bundle: names and content hashes, no values."""
    return {"revision": bundle["revision"], **{
        kind: [{"name": name, "hash": content_hash(content) if content is not None else None}
               for name, content in sorted(bundle[kind].items())] for kind in ("configMaps", "secrets")}}


async def capture(client: kube.Client, obj: dict[str, Any]) -> dict[str, Any]:
    """The bundle of the workload's current template, read from the cluster now."""
    namespace = obj["metadata"]["namespace"]
    template = obj["spec"]["template"]
    bundle: dict[str, Any] = {
        "workload": {"kind": obj["kind"], "namespace": namespace, "name": obj["metadata"]["name"]},
        "revision": revision(template), "generation": obj["metadata"].get("generation"),
        "template": template, "configMaps": {}, "secrets": {}}
    for kind, names in references(template).items():
        plural = "configmaps" if kind == "configMaps" else "secrets"
        for name in names:
            try:
                found = await client.request("GET", f"/api/v1/namespaces/{namespace}/{plural}/{name}")
            except errors.KubernetesRefused as exc:
                if exc.status != 404:
                    raise
                bundle[kind][name] = None  # an optional reference to nothing: restored as nothing
                continue
            keep = ("data", "binaryData") if kind == "configMaps" else ("type", "data")
            bundle[kind][name] = {k: found[k] for k in keep if k in found}
    return bundle


def store_namespace(settings: Any) -> str:
    """``kubernetes.snapshots.namespace``; else the router's own namespace; else ``default``."""
    if settings.snapshots.namespace:
        return settings.snapshots.namespace
    try:
        return (settings.service_account_dir / "namespace").read_text().strip() or "default"
    except OSError:
        return "default"


async def record(client: kube.Client, settings: Any, obj: dict[str, Any]) -> dict[str, Any]:
    """Capture and store the workload's current bundle; its :func:`summary` for the event, which
    says ``error`` instead when the snapshot could not be taken (the rollout is news all the same)."""
    try:
        bundle = await capture(client, obj)
        where = store_namespace(settings)
        name = await store(client, where, client.cluster, bundle, settings.snapshots.keep)
    except (errors.KubernetesRefused, errors.PermanentError) as exc:
        log.error("no snapshot of %s %s/%s: %s", obj["kind"], obj["metadata"]["namespace"],
                  obj["metadata"]["name"], exc)
        return {"error": str(exc)}
    return {**summary(bundle), "store": f"Secret {where}/{name}"}


def _name(key: str, rev: str) -> str:
    return f"tr-snapshot-{key}-{rev}"


async def store(client: kube.Client, store_namespace: str, cluster: str, bundle: dict[str, Any], keep: int) -> str:
    """Write the bundle as a Secret, then delete the oldest beyond ``keep``; the Secret's name."""
    work = bundle["workload"]
    key = workload_key(cluster, work["kind"], work["namespace"], work["name"])
    encoded = json.dumps(bundle, sort_keys=True, separators=(",", ":")).encode()
    if len(encoded) > MAX_BYTES:
        raise errors.PermanentError(f"the bundle of {work['kind']} {work['namespace']}/{work['name']} is "
                                    f"{len(encoded)} bytes, over the {MAX_BYTES} a snapshot Secret holds")
    name = _name(key, bundle["revision"])
    body = {"apiVersion": "v1", "kind": "Secret", "type": "trigger-router.dev/snapshot",
            "metadata": {"name": name, "labels": {LABEL: key}, "annotations": {
                "trigger-router.dev/workload": f"{work['kind']}/{work['namespace']}/{work['name']}",
                "trigger-router.dev/revision": bundle["revision"],
                "trigger-router.dev/recorded-at": str(time.time_ns())}},
            "data": {"bundle.json": base64.b64encode(encoded).decode()}}
    collection = f"/api/v1/namespaces/{store_namespace}/secrets"
    try:
        await client.request("POST", collection, body=body)
    except errors.KubernetesRefused as exc:
        if exc.status != 409:
            raise
        await client.request("PUT", f"{collection}/{name}", body=body)  # the revision again: now the newest
    for old in (await _listing(client, store_namespace, key))[keep:]:
        await client.request("DELETE", f"{collection}/{old['metadata']['name']}")
    return name


async def _listing(client: kube.Client, store_namespace: str, key: str) -> list[dict[str, Any]]:
    found = await client.request("GET", f"/api/v1/namespaces/{store_namespace}/secrets",
                                 query={"labelSelector": f"{LABEL}={key}"})
    return sorted(found["items"], key=lambda s: int(s["metadata"]["annotations"]["trigger-router.dev/recorded-at"]),
                  reverse=True)


async def load(client: kube.Client, store_namespace: str, cluster: str, kind: str, namespace: str,
               name: str) -> list[dict[str, Any]]:
    """The workload's bundles, newest first."""
    key = workload_key(cluster, kind, namespace, name)
    return [json.loads(base64.b64decode(s["data"]["bundle.json"])) for s in await _listing(client, store_namespace, key)]
