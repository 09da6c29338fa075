"""Transitions as CloudEvents, and a completed rollout as a CDEvent, published through the bus.

Event ids are derived from (cluster, object uid, transition, identity): never from the
resourceVersion, so a second router watching the same cluster, or this one after a re-list,
publishes the same id and JetStream's duplicate window keeps one copy.

A completed rollout of a Deployment, StatefulSet or DaemonSet is also published as CDEvents
``service.deployed`` (first rollout) or ``service.upgraded``, whose ``artifactId`` is the purl of
the image *digest the pods run*, read from ``status.containerStatuses[].imageID`` - not the tag in
the manifest, which may have moved since it was built.
"""

from __future__ import annotations

import logging
from typing import Any

from handlers.kubernetes import client as kube
from handlers.kubernetes import workloads
from handlers.sources.kubernetes.transitions import Transition
from router.plugins import cdevents, event_types, events

log = logging.getLogger(__name__)


def source(cluster: str, plural: str, namespace: str | None, name: str) -> str:
    scope = f"namespaces/{namespace}/" if namespace else ""
    return f"k8s://{cluster}/{scope}{plural}/{name}"


def event_id(cluster: str, uid: str, transition: Transition) -> str:
    return cdevents.deterministic_id("k8s", cluster, uid, transition.name, transition.identity)


async def current_pods(client: kube.Client, obj: dict[str, Any]) -> list[dict[str, Any]]:
    namespace = obj["metadata"]["namespace"]
    listing = await client.request("GET", f"/api/v1/namespaces/{namespace}/pods",
                                   query={"labelSelector": workloads.selector(obj)})
    return workloads.current_pods(obj, listing["items"])


def template_hash(pods: list[dict[str, Any]]) -> str | None:
    """The new ReplicaSet's ``pod-template-hash`` (Deployments), what a metric gate selects the new
    pods by; ``None`` when the current pods do not agree on one (or carry none)."""
    found = {(p["metadata"].get("labels") or {}).get("pod-template-hash") for p in pods}
    return found.pop() if len(found) == 1 else None


def running_images(obj: dict[str, Any], pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per container of the current template: the image, and the digest its ready pods run."""
    by_container: dict[str, dict[str, Any]] = {}
    for pod in pods:
        for running in workloads.running_images(pod):
            entry = by_container.setdefault(running["container"], {
                "container": running["container"], "image": running["image"],
                "repository": workloads.repository_of(running["image"]), "digests": set()})
            if running["digest"]:
                entry["digests"].add(running["digest"])
    images = []
    for name, image in workloads.template_images(obj).items():
        entry = by_container.get(name, {"container": name, "image": image,
                                        "repository": workloads.repository_of(image), "digests": set()})
        digests = sorted(entry.pop("digests"))
        # More than one digest for one container of one template: a tag resolved differently on
        # different nodes. Reported, and no single digest is claimed.
        entry.update(digest=digests[0] if len(digests) == 1 else None, digests=digests)
        images.append(entry)
    return images


async def build(client: kube.Client, obj: dict[str, Any], plural: str, transition: Transition) -> list[events.CloudEvent]:
    metadata = obj["metadata"]
    kind, namespace, name = obj["kind"], metadata.get("namespace"), metadata["name"]
    data: dict[str, Any] = {
        "cluster": client.cluster, "apiVersion": obj.get("apiVersion"), "kind": kind, "namespace": namespace,
        "name": name, "uid": metadata["uid"], "generation": metadata.get("generation"),
        "transition": transition.name, **transition.data}
    deployed = transition.name == "rollout_completed" and kind in workloads.WORKLOAD_KINDS
    if deployed:
        pods = await current_pods(client, obj)
        data["images"] = running_images(obj, pods)
        if kind == "Deployment":
            data["podTemplateHash"] = template_hash(pods)
    event = events.make({
        "id": event_id(client.cluster, metadata["uid"], transition),
        "source": source(client.cluster, plural, namespace, name),
        "type": event_types.kubernetes(kind, transition.name),
        "subject": f"{namespace}/{name}" if namespace else name,
        "time": cdevents.now(),
    }, data)
    found = [event]
    if deployed:
        cdevent = service_event(event, data)
        if cdevent is not None:
            found.append(cdevent)
    return found


def service_event(trigger: events.CloudEvent, data: dict[str, Any]) -> events.CloudEvent | None:
    """``service.deployed`` / ``service.upgraded`` for a completed rollout, if a digest is known."""
    main = data["images"][0] if data["images"] else None
    if not main or not main["digest"]:
        log.warning("%s %s/%s rolled out but no pod reports an image digest; no service event",
                    data["kind"], data["namespace"], data["name"])
        return None
    purl = cdevents.oci_purl(main["repository"], main["digest"], workloads.tag_of(main["image"]))
    environment = f"{data['cluster']}/{data['namespace']}"
    cdevent_type = event_types.SERVICE_DEPLOYED if data.get("first") else event_types.SERVICE_UPGRADED
    return cdevents.derive(
        trigger, cdevent_type, subject_id=f"{data['namespace']}/{data['name']}",
        subject_source=f"k8s://{data['cluster']}",
        content={"environment": {"id": environment, "source": f"k8s://{data['cluster']}/namespaces/{data['namespace']}"},
                 "artifactId": purl},
        chain_key=f"k8s\x00{data['uid']}\x00{data['generation']}",
        custom_data={"kind": data["kind"], "generation": data["generation"], "images": data["images"]})
