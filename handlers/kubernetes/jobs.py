"""The Job a ``kubernetesJob`` run creates: template, limits, digest pin, name, labels.

Kept apart from the action so that what is checked at rule load (a template without resource
limits is refused unless ``allowUnbounded``) and what is built at run time are the same code.

The name is derived from the run id, like Knative's JobSink derives it from the event: a run that
is carried out again (the router died mid-run, the run message was redelivered) finds the Job it
created the first time instead of starting a second test.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from router.plugins import references

LABEL_RUN = "trigger-router.dev/run-id"
LABEL_RULE = "trigger-router.dev/rule"
ANNOTATION_RUN = "trigger-router.dev/run-id"
ANNOTATION_EVENT_ID = "trigger-router.dev/event-id"
ANNOTATION_EVENT_SOURCE = "trigger-router.dev/event-source"
ANNOTATION_EVENT_TYPE = "trigger-router.dev/event-type"
ANNOTATION_RULE = "trigger-router.dev/rule"
ANNOTATION_TRACEPARENT = "trigger-router.dev/traceparent"
TRACEPARENT_ENV = "TRACEPARENT"
"""The environment variable OpenTelemetry's SDKs and ``otel-cli`` read a parent trace context from."""

_LABEL_VALUE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]{0,61}[A-Za-z0-9]|[A-Za-z0-9])$")
_NAME_UNSAFE = re.compile(r"[^a-z0-9-]+")


def unbounded_containers(job: dict[str, Any]) -> list[str]:
    """Containers (path and name) of a Job manifest without both resource requests and limits."""
    pod = (((job or {}).get("spec") or {}).get("template") or {}).get("spec") or {}
    missing = []
    for field in ("initContainers", "containers"):
        for index, container in enumerate(pod.get(field) or []):
            resources = container.get("resources") or {}
            absent = [key for key in ("requests", "limits") if not resources.get(key)]
            if absent:
                missing.append(f"spec.template.spec.{field}[{index}] ({container.get('name', '?')}) "
                               f"has no resources.{' or resources.'.join(absent)}")
    return missing


def check_template(job: Any, allow_unbounded: bool) -> None:
    """Raise ``ValueError`` for a template that is not a Job or runs without resource bounds."""
    if not isinstance(job, dict):
        raise ValueError("the Job template must be a mapping (a batch/v1 Job manifest)")
    if job.get("kind", "Job") != "Job" or job.get("apiVersion", "batch/v1") != "batch/v1":
        raise ValueError("the template must be a batch/v1 Job")
    containers = (((job.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers")
    if not containers:
        raise ValueError("the Job template has no spec.template.spec.containers")
    if not allow_unbounded:
        missing = unbounded_containers(job)
        if missing:
            raise ValueError(f"{missing[0]}; set them, or allowUnbounded: true")


def job_name(template: dict[str, Any], run_id: str) -> str:
    metadata = template.get("metadata") or {}
    base = _NAME_UNSAFE.sub("-", (metadata.get("name") or metadata.get("generateName") or "tr-job").lower())
    return f"{base.strip('-')[:50].rstrip('-') or 'tr-job'}-{run_id[:12]}"


def pin(image: str, digest: str | None) -> str:
    """``repo[:tag]@sha256:<hex>``; ``digest`` None: ``image`` unchanged (no digest was asked for).

    Any other ``digest`` that names no sha256 digest raises ``references.NotADigest`` (a
    ``ValueError``): pinning is never silently skipped.
    """
    if digest is None:
        return image
    return f"{image.split('@', 1)[0]}@{references.digest(digest)}"


def build(template: dict[str, Any], *, namespace: str, run_id: str, rule: str, event_id: str,
          event_source: str, event_type: str, image: str | None, container: str | None,
          digest: str | None, backoff_limit: int, active_deadline_seconds: int | None,
          ttl_seconds_after_finished: int | None, traceparent: str | None = None) -> dict[str, Any]:
    job = copy.deepcopy(template)
    job["apiVersion"], job["kind"] = "batch/v1", "Job"
    metadata = job.setdefault("metadata", {})
    name = job_name(job, run_id)
    metadata.pop("generateName", None)
    metadata.update(name=name, namespace=namespace)
    labels = {LABEL_RUN: run_id}
    if _LABEL_VALUE.match(rule):
        labels[LABEL_RULE] = rule
    annotations = {ANNOTATION_RUN: run_id, ANNOTATION_RULE: rule, ANNOTATION_EVENT_ID: event_id,
                   ANNOTATION_EVENT_SOURCE: event_source, ANNOTATION_EVENT_TYPE: event_type}
    if traceparent:
        annotations[ANNOTATION_TRACEPARENT] = traceparent
    metadata["labels"] = {**(metadata.get("labels") or {}), **labels}
    metadata["annotations"] = {**(metadata.get("annotations") or {}), **annotations}
    spec = job.setdefault("spec", {})
    spec["backoffLimit"] = backoff_limit
    if active_deadline_seconds is not None:
        spec["activeDeadlineSeconds"] = active_deadline_seconds
    if ttl_seconds_after_finished is not None:
        spec["ttlSecondsAfterFinished"] = ttl_seconds_after_finished
    pod_template = spec.setdefault("template", {})
    pod_metadata = pod_template.setdefault("metadata", {})
    pod_metadata["labels"] = {**(pod_metadata.get("labels") or {}), **labels}
    pod_metadata["annotations"] = {**(pod_metadata.get("annotations") or {}), **annotations}
    pod_spec = pod_template.setdefault("spec", {})
    pod_spec.setdefault("restartPolicy", "Never")
    containers = pod_spec["containers"]
    target = next((c for c in containers if c.get("name") == container), None) if container else containers[0]
    if target is None:
        raise ValueError(f"the Job template has no container named {container!r}")
    if image:
        target["image"] = image
    target["image"] = pin(target.get("image", ""), digest)
    if traceparent:  # every container continues the run's trace (a test image that traces can read it)
        for each in [*pod_spec.get("initContainers", []), *containers]:
            env = [e for e in each.get("env") or [] if e.get("name") != TRACEPARENT_ENV]
            each["env"] = [*env, {"name": TRACEPARENT_ENV, "value": traceparent}]
    return job
