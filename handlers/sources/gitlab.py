"""GitLab webhooks: ``X-Gitlab-Token`` verification and normalization to CloudEvents.

One delivery becomes one CloudEvent of type ``com.gitlab.<object_kind>``. Its id is GitLab's
``Idempotency-Key`` (the same across GitLab's retries of one delivery) or, from GitLab versions
without it, ``X-Gitlab-Event-UUID``. Pipeline events are also translated to CDEvents
``pipelinerun.queued/started/finished``.

``object_kind`` becomes part of the type (and so of the NATS subject), so it must be GitLab's
vocabulary (lowercase words joined by ``_``); members the translation reads must have the JSON type
GitLab documents. Anything else is a 400 naming the header or member (``payload``).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import SecretStr

from handlers.sources.payload import dig, first, header_token, load_object, optional, safe_token, scalar_text
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
_KIND = re.compile(r"^[a-z0-9_]{1,64}$")
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
        return safe_token(delivery, "Idempotency-Key", "X-Gitlab-Event-UUID")

    def authenticate(self, delivery: Delivery) -> None:
        if not self.tokens:
            raise errors.Unauthorized("no GitLab webhook token is configured (gitlab.tokens)")
        presented = delivery.headers.get("X-Gitlab-Token")
        if not presented:
            raise errors.Unauthorized("missing X-Gitlab-Token header")
        if not auth.token_matches(presented, self.tokens):
            raise errors.Unauthorized("X-Gitlab-Token does not match any configured token")

    def normalize(self, delivery: Delivery) -> list[events.CloudEvent]:
        delivery_id = header_token(delivery, "Idempotency-Key") or header_token(delivery, "X-Gitlab-Event-UUID")
        if not delivery_id:
            raise errors.BadRequest("missing Idempotency-Key or X-Gitlab-Event-UUID header",
                                    field="Idempotency-Key")
        payload = load_object(delivery.body)
        kind = payload.get("object_kind") or payload.get("event_type")
        if not isinstance(kind, str) or not kind:
            raise errors.BadRequest("payload has no object_kind", field="object_kind")
        if not _KIND.match(kind):
            raise errors.BadRequest("object_kind must be a GitLab event kind (1-64 of a-z, 0-9, _)",
                                    field="object_kind")
        attributes = {"id": delivery_id, "source": _source(payload), "type": event_types.gitlab(kind)}
        subject = scalar_text(payload, *_SUBJECT.get(kind, ()))
        if subject is not None:
            attributes["subject"] = subject
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
    pipeline = optional(payload, "object_attributes", kind=dict) or {}
    status = optional(pipeline, "status", prefix="object_attributes.")
    cdevent_type = _PIPELINE_STAGE.get(status or "")
    if cdevent_type is None:
        return None  # manual and other holding states say nothing about delivery
    uri = optional(pipeline, "url", prefix="object_attributes.") or f"{event.source}/-/pipelines/{pipeline.get('id')}"
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
