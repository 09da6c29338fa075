"""GitLab webhooks: ``X-Gitlab-Token`` verification and normalization to CloudEvents.

One delivery becomes one CloudEvent of type ``com.gitlab.<object_kind>``. Its id is GitLab's
``Idempotency-Key`` (the same across GitLab's retries of one delivery) or, from GitLab versions
without it, ``X-Gitlab-Event-UUID``. Pipeline events are also translated to CDEvents
``pipelinerun.queued/started/finished``.
"""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from handlers.sources.payload import dig, first, load_object
from router import plugins
from router.plugins import Delivery, Section, Settings, auth, cdevents, errors, event_types, events

_SUBJECT: dict[str, tuple[tuple[str, ...], ...]] = {
    "push": (("ref",),),
    "tag_push": (("ref",),),
    "pipeline": (("object_attributes", "sha"),),
    "build": (("sha",),),
    "deployment": (("environment",),),
    "release": (("tag",),),
    "merge_request": (("object_attributes", "last_commit", "id"),),
}
_TIME: dict[str, tuple[tuple[str, ...], ...]] = {
    "pipeline": (("object_attributes", "finished_at"), ("object_attributes", "created_at")),
    "build": (("build_finished_at",), ("build_started_at",), ("build_created_at",)),
    "deployment": (("status_changed_at",),),
    "release": (("released_at",), ("created_at",)),
    "merge_request": (("object_attributes", "updated_at"),),
}
_PIPELINE_STAGE = {
    "created": event_types.PIPELINERUN_QUEUED,
    "waiting_for_resource": event_types.PIPELINERUN_QUEUED,
    "preparing": event_types.PIPELINERUN_QUEUED,
    "pending": event_types.PIPELINERUN_QUEUED,
    "scheduled": event_types.PIPELINERUN_QUEUED,
    "running": event_types.PIPELINERUN_STARTED,
    "success": event_types.PIPELINERUN_FINISHED,
    "failed": event_types.PIPELINERUN_FINISHED,
    "canceled": event_types.PIPELINERUN_FINISHED,
    "skipped": event_types.PIPELINERUN_FINISHED,
}
_STATUS_OUTCOME = {"success": "success", "failed": "failure", "canceled": "cancel", "skipped": "cancel"}


@plugins.settings_section("gitlab")
class GitlabSettings(Section):
    tokens: list[SecretStr] = []
    """Accepted values of ``X-Gitlab-Token``; several for rotation."""


@plugins.webhook_source("gitlab")
class GitlabSource:
    def __init__(self, settings: Settings) -> None:
        self.tokens = settings.gitlab.tokens

    def delivery_id(self, delivery: Delivery) -> str:
        return delivery.headers.get("Idempotency-Key") or delivery.headers.get("X-Gitlab-Event-UUID") or ""

    def authenticate(self, delivery: Delivery) -> None:
        if not self.tokens:
            raise errors.Unauthorized("no GitLab webhook token is configured (gitlab.tokens)")
        presented = delivery.headers.get("X-Gitlab-Token")
        if not presented:
            raise errors.Unauthorized("missing X-Gitlab-Token header")
        if not auth.token_matches(presented, self.tokens):
            raise errors.Unauthorized("X-Gitlab-Token does not match any configured token")

    def normalize(self, delivery: Delivery) -> list[events.CloudEvent]:
        delivery_id = self.delivery_id(delivery)
        if not delivery_id:
            raise errors.BadRequest("missing Idempotency-Key or X-Gitlab-Event-UUID header",
                                    field="Idempotency-Key")
        payload = load_object(delivery.body)
        kind = payload.get("object_kind") or payload.get("event_type")
        if not isinstance(kind, str) or not kind:
            raise errors.BadRequest("payload has no object_kind", field="object_kind")
        attributes = {"id": delivery_id, "source": _source(payload), "type": event_types.gitlab(kind)}
        subject = first(payload, *_SUBJECT.get(kind, ()))
        if subject not in (None, ""):
            attributes["subject"] = str(subject)
        time = events.rfc3339(first(payload, *_TIME.get(kind, ())) or _last_commit_time(payload))
        if time:
            attributes["time"] = time
        event = events.make(attributes, payload, raw=delivery.body)
        derived = _pipeline(event, payload) if kind == "pipeline" else None
        return [event, derived] if derived else [event]


def _source(payload: dict[str, Any]) -> str:
    return first(payload, ("project", "web_url"), ("repository", "homepage")) or "https://gitlab.com"


def _last_commit_time(payload: dict[str, Any]) -> Any:
    commits = payload.get("commits")
    if isinstance(commits, list) and commits and isinstance(commits[-1], dict):
        return commits[-1].get("timestamp")
    return None


def _pipeline(event: events.CloudEvent, payload: dict[str, Any]) -> events.CloudEvent | None:
    pipeline = payload.get("object_attributes") or {}
    status = pipeline.get("status")
    cdevent_type = _PIPELINE_STAGE.get(status)
    if cdevent_type is None:
        return None  # manual and other holding states say nothing about delivery
    uri = pipeline.get("url") or f"{event.source}/-/pipelines/{pipeline.get('id')}"
    content: dict[str, Any] = {
        "pipelineName": str(pipeline.get("name") or dig(payload, "project", "path_with_namespace") or "pipeline"),
        "uri": uri,
    }
    if cdevent_type == event_types.PIPELINERUN_FINISHED:
        content["outcome"] = _STATUS_OUTCOME[status]
        if status != "success":
            content["errors"] = f"pipeline {status} ({pipeline.get('detailed_status') or status})"
    return cdevents.derive(event, cdevent_type, subject_id=str(pipeline.get("id")), content=content,
                           chain_key=uri, subject_source=event.source)
