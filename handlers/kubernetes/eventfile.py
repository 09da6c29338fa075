"""A Job as a function: the triggering event in, checks out (``kubernetesJob``'s ``eventFile``).

Tests run where the code runs when the test is a Job in the service's cluster, and such a test
needs to know what it verifies. Like Knative's JobSink, the event goes in as a file: the
structured-mode JSON of the triggering CloudEvent at :data:`PATH` in every container, from a
ConfigMap named after the Job (:func:`config_map_name`, so a redelivered run finds the one it made),
plus ``TRIGGER_ROUTER_RUN_ID`` and ``TRIGGER_ROUTER_EVENT_ID`` in the environment.

Ordering: the Job is created first, then the ConfigMap with an ``ownerReference`` to the Job's
uid, so the garbage collector deletes it with the Job (``ttlSecondsAfterFinished``, a cancelled
run's delete) and no crash between the two can leave an orphan: a redelivered run finds the Job
and creates the missing ConfigMap. The pod waits for it without help: the volume is not
``optional``, so the kubelet keeps the pod in ``ContainerCreating`` and retries the mount until the
ConfigMap exists (a second or so; a ``FailedMount`` event may show meanwhile). The owner reference
leaves ``blockOwnerDeletion`` unset, which would need the right to update the Job's finalizers.

What comes back (:func:`report`) is read from each container's termination message (kubelet
writes what the container left in ``terminationMessagePath``, ``/dev/termination-log`` by default,
at most 4096 bytes, into ``state.terminated.message``): a JSON object ``{"checks": [{"name",
"passed", ...}], "reason": "..."}`` is merged into the outcome; anything else is kept as text. The
exit code alone decides the outcome (0 ``success``, else ``failure``), so a crashed test that
wrote "passed" checks before dying still fails.
"""

from __future__ import annotations

import json
from typing import Any

from router.plugins import events

MOUNT_DIR = "/etc/trigger-router"
FILE = "event.json"
PATH = f"{MOUNT_DIR}/{FILE}"
"""Where the event is in every container of the Job's pods."""
VOLUME = "trigger-router-event"
ENV_RUN_ID = "TRIGGER_ROUTER_RUN_ID"
ENV_EVENT_ID = "TRIGGER_ROUTER_EVENT_ID"
MAX_BYTES = 1024 * 1024 - 16 * 1024
"""Longest event JSON: a ConfigMap holds at most 1 MiB, metadata included."""
MESSAGE_BYTES = 4096
"""Kubelet's own limit on a termination message; what is kept of one that is not the contract."""


def config_map_name(job_name: str) -> str:
    """``<job name>-event``: a Job name is at most 63 characters, a ConfigMap's may have 253."""
    return f"{job_name}-event"


def mount(job: dict[str, Any], *, run_id: str, event_id: str) -> None:
    """Add the event volume, its read-only mount and the two variables to every container of ``job``.

    ``ValueError`` when the template already uses the volume name or the mount directory."""
    pod = job["spec"]["template"]["spec"]
    name = config_map_name(job["metadata"]["name"])
    if any(volume.get("name") == VOLUME for volume in pod.get("volumes") or []):
        raise ValueError(f"eventFile: the Job template already has a volume named {VOLUME!r}")
    pod["volumes"] = [*(pod.get("volumes") or []),
                      {"name": VOLUME, "configMap": {"name": name, "items": [{"key": FILE, "path": FILE}]}}]
    for container in [*(pod.get("initContainers") or []), *pod["containers"]]:
        mounts = container.get("volumeMounts") or []
        if any(m.get("mountPath", "").rstrip("/") == MOUNT_DIR for m in mounts):
            raise ValueError(f"eventFile: container {container.get('name')!r} already mounts {MOUNT_DIR}")
        container["volumeMounts"] = [*mounts, {"name": VOLUME, "mountPath": MOUNT_DIR, "readOnly": True}]
        env = [e for e in container.get("env") or [] if e.get("name") not in (ENV_RUN_ID, ENV_EVENT_ID)]
        container["env"] = [*env, {"name": ENV_RUN_ID, "value": run_id}, {"name": ENV_EVENT_ID, "value": event_id}]


def document(event: events.CloudEvent) -> str:
    """The event file's content, structured-mode JSON; ``ValueError`` if no ConfigMap can hold it."""
    text = json.dumps(events.to_json_object(event), ensure_ascii=False, indent=2)
    if len(text.encode()) > MAX_BYTES:
        raise ValueError(f"eventFile: the event is {len(text.encode())} bytes as JSON; a ConfigMap holds at most "
                         f"{MAX_BYTES}")
    return text


def config_map(job: dict[str, Any], text: str, labels: dict[str, str]) -> dict[str, Any]:
    """The ConfigMap holding ``text`` (``document``) for the created ``job`` (it has a uid), owned by it."""
    metadata = job["metadata"]
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": config_map_name(metadata["name"]), "namespace": metadata["namespace"],
                         "labels": labels,
                         "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": metadata["name"],
                                              "uid": metadata["uid"]}]},
            "data": {FILE: text}}


def _checks(value: Any) -> list[dict[str, Any]] | None:
    if not isinstance(value, list):
        return None
    if all(isinstance(c, dict) and isinstance(c.get("name"), str) and isinstance(c.get("passed"), bool)
           for c in value):
        return value
    return None


def report(message: str | None) -> dict[str, Any]:
    """What one container's termination message says, for its entry in the outcome:
    ``{"report": {"checks", "reason"}}`` when it follows the contract, ``{"terminationMessage":
    text}`` when it does not, ``{}`` without one."""
    if not message or not message.strip():
        return {}
    try:
        document = json.loads(message)
    except ValueError:
        document = None
    if isinstance(document, dict) and ("checks" in document or "reason" in document):
        checks = _checks(document.get("checks", []))
        reason = document.get("reason", "")
        if checks is not None and isinstance(reason, str):
            return {"report": {"checks": checks, "reason": reason}}
    return {"terminationMessage": message[:MESSAGE_BYTES]}


def merged(pods: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """The checks and reason the newest reporting pod's containers reported (``pods`` as the action
    lists them, oldest first: an earlier attempt's report is superseded by a retry's). Each
    container's ``report`` is replaced by the number of checks it gave, so they are not kept twice."""
    found: tuple[list[dict[str, Any]], str] = ([], "")
    for pod in reversed(pods):
        reported = [c for c in pod["containers"] if "report" in c]
        if reported and not found[0] and not found[1]:
            checks = [{**check, "container": check.get("container", c["name"])}
                      for c in reported for check in c["report"]["checks"]]
            found = checks, "; ".join(c["report"]["reason"] for c in reported if c["report"]["reason"])
        for container in reported:
            container["reportedChecks"] = len(container.pop("report")["checks"])
    return found
