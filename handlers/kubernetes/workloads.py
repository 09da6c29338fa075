"""How a workload's rollout, its pods and their images are read, in one place.

The watch source (is this rollout complete? which digest runs?) and the ``rolloutCheck`` action
(verify it) must agree exactly, or a rule triggered by ``rollout_completed`` could find the rollout
incomplete. Both read objects through these functions.

Completion follows ``kubectl rollout status``: the controller has observed the current generation
and every desired replica is updated, ready and available (for StatefulSets also
``currentRevision == updateRevision``), with no old replica left.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
WORKLOAD_KINDS = {"Deployment": "apps", "StatefulSet": "apps", "DaemonSet": "apps"}
# Waiting reasons that mean a container cannot run; OOMKilled shows up as a termination reason.
WAITING_PROBLEMS = {"CrashLoopBackOff": "crashloop", "ImagePullBackOff": "image_pull_failed",
                    "ErrImagePull": "image_pull_failed"}


@dataclass(frozen=True)
class Rollout:
    complete: bool
    failed: str | None
    """Why the rollout failed (ProgressDeadlineExceeded), or None."""
    desired: int
    updated: int
    ready: int
    available: int

    def describe(self) -> str:
        return (f"{self.updated}/{self.desired} updated, {self.ready} ready, {self.available} available"
                + (f", failed: {self.failed}" if self.failed else ""))


def rollout(obj: dict[str, Any]) -> Rollout:
    kind = obj.get("kind", "Deployment")
    spec, status = obj.get("spec", {}), obj.get("status", {}) or {}
    observed = status.get("observedGeneration", 0) >= obj["metadata"].get("generation", 0)
    if kind == "DaemonSet":
        desired = status.get("desiredNumberScheduled", 0)
        updated, ready = status.get("updatedNumberScheduled", 0), status.get("numberReady", 0)
        available = status.get("numberAvailable", 0)
        complete = observed and updated == ready == available == desired
        return Rollout(complete, None, desired, updated, ready, available)
    desired = spec.get("replicas", 1)
    updated, ready = status.get("updatedReplicas", 0), status.get("readyReplicas", 0)
    available = status.get("availableReplicas", 0)
    complete = observed and updated == ready == available == desired == status.get("replicas", 0)
    failed = None
    if kind == "StatefulSet":
        complete = complete and status.get("currentRevision") == status.get("updateRevision")
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            failed = f"ProgressDeadlineExceeded: {condition.get('message', '')}".rstrip(": ")
    return Rollout(complete and not failed, failed, desired, updated, ready, available)


def template_images(obj: dict[str, Any]) -> dict[str, str]:
    containers = obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
    return {c["name"]: c.get("image", "") for c in containers}


def selector(obj: dict[str, Any]) -> str:
    """``spec.selector`` as a label selector string."""
    spec = obj.get("spec", {}).get("selector") or {}
    parts = [f"{k}={v}" for k, v in sorted((spec.get("matchLabels") or {}).items())]
    for expression in spec.get("matchExpressions") or []:
        values = ",".join(expression.get("values") or [])
        operator = expression["operator"]
        if operator in ("In", "NotIn"):
            parts.append(f"{expression['key']} {operator.lower()} ({values})")
        elif operator == "Exists":
            parts.append(expression["key"])
        else:
            parts.append(f"!{expression['key']}")
    return ",".join(parts)


def current_pods(obj: dict[str, Any], pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pods of the workload's current template: not terminating, same container images."""
    wanted = template_images(obj)
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")
            and {c["name"]: c.get("image", "") for c in p["spec"]["containers"]} == wanted]


def digest_of(image_id: str | None) -> str | None:
    """The ``sha256:<hex>`` in a containerStatuses imageID (``repo@sha256:...``, ``docker-pullable://...``)."""
    if not image_id:
        return None
    found = _DIGEST.findall(image_id)
    return found[-1] if found else None


def repository_of(image: str) -> str:
    """``host/path`` of an image reference, without tag or digest (Docker Hub names completed)."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last)] + last.split(":", 1)[0]
    first = name.split("/", 1)[0]
    if "/" not in name:
        name = f"docker.io/library/{name}"
    elif "." not in first and ":" not in first and first != "localhost":
        name = f"docker.io/{name}"
    return name


def tag_of(image: str) -> str | None:
    last = image.split("@", 1)[0].rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def image_entry(container: str, image: str, image_id: str | None = None) -> dict[str, Any]:
    """One container's image as events carry it: the digest it runs (``imageID``), else the one
    its reference is pinned to, so a failed rollout or a crash names the digest that failed."""
    return {"container": container, "image": image, "repository": repository_of(image),
            "digest": digest_of(image_id) or digest_of(image)}


def pod_image(pod: dict[str, Any], container: str) -> dict[str, Any]:
    spec = {c["name"]: c.get("image", "") for c in (pod.get("spec") or {}).get("containers") or []}
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == container:
            return image_entry(container, status.get("image") or spec.get(container, ""), status.get("imageID"))
    return image_entry(container, spec.get(container, ""))


def running_images(pod: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per container status: name, image, imageID, digest, restarts, ready."""
    return [{"container": s["name"], "image": s.get("image", ""), "imageID": s.get("imageID", ""),
             "digest": digest_of(s.get("imageID")), "restartCount": s.get("restartCount", 0),
             "ready": bool(s.get("ready"))}
            for s in (pod.get("status") or {}).get("containerStatuses") or []]


def problems(pod: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(container, transition, reason) for each container that cannot run properly."""
    found = []
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        state, last = status.get("state") or {}, status.get("lastState") or {}
        waiting = (state.get("waiting") or {}).get("reason")
        if waiting in WAITING_PROBLEMS:
            found.append((status["name"], WAITING_PROBLEMS[waiting], waiting))
        for terminated in (state.get("terminated"), last.get("terminated")):
            if terminated and terminated.get("reason") == "OOMKilled":
                found.append((status["name"], "oomkilled", "OOMKilled"))
                break
    return found


def owner(pod: dict[str, Any]) -> tuple[str, str] | None:
    """(kind, name) of the pod's controller; a ReplicaSet's Deployment is derived from its name."""
    for reference in pod["metadata"].get("ownerReferences") or []:
        if not reference.get("controller"):
            continue
        if reference["kind"] == "ReplicaSet":
            template_hash = pod["metadata"].get("labels", {}).get("pod-template-hash")
            if template_hash and reference["name"].endswith(f"-{template_hash}"):
                return "Deployment", reference["name"][: -len(template_hash) - 1]
        return reference["kind"], reference["name"]
    return None
