"""GitHub webhooks: ``X-Hub-Signature-256`` verification and normalization to CloudEvents.

One delivery becomes one CloudEvent of type ``com.github.<X-GitHub-Event>[.<action>]`` whose id is
``X-GitHub-Delivery`` (stable across GitHub's redeliveries, so JetStream deduplicates them), plus a
CDEvents translation for the events that say something about delivery: ``workflow_run`` ->
``pipelinerun.*`` and a container ``registry_package``/``package`` publish -> ``artifact.published``.

The event name and ``action`` become part of the type (and so of the NATS subject), so they must be
GitHub's vocabulary (lowercase words joined by ``_``); members the translations read must have the
JSON type GitHub documents. Anything else is a 400 naming the header or member (``payload``).
"""

from __future__ import annotations

import logging
import re
from typing import Any, Callable

from pydantic import SecretStr

from handlers.sources.payload import dig, first, header_token, load_object, optional, safe_token, scalar_text
from router import plugins
from router.plugins import Delivery, Section, Settings, artifacts, auth, cdevents, errors, event_types, events

log = logging.getLogger(__name__)

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_NAME = re.compile(r"^[a-z0-9_]{1,64}$")

# Per event: where the subject (ref, sha or environment) and the occurrence time live.
_SUBJECT: dict[str, tuple[tuple[str, ...], ...]] = {
    "push": (("ref",),),
    "create": (("ref",),),
    "delete": (("ref",),),
    "workflow_run": (("workflow_run", "head_sha"),),
    "workflow_job": (("workflow_job", "head_sha"),),
    "check_suite": (("check_suite", "head_sha"),),
    "check_run": (("check_run", "head_sha"),),
    "deployment": (("deployment", "environment"),),
    "deployment_status": (("deployment", "environment"), ("deployment_status", "environment")),
    "status": (("sha",),),
    "release": (("release", "tag_name"),),
    "registry_package": (("registry_package", "package_version", "container_metadata", "tag", "name"),
                         ("registry_package", "package_version", "version")),
    "package": (("package", "package_version", "container_metadata", "tag", "name"),
                ("package", "package_version", "version")),
    "pull_request": (("pull_request", "head", "sha"),),
}
_TIME: dict[str, tuple[tuple[str, ...], ...]] = {
    "push": (("head_commit", "timestamp"),),
    "workflow_run": (("workflow_run", "updated_at"),),
    "workflow_job": (("workflow_job", "completed_at"), ("workflow_job", "started_at")),
    "check_suite": (("check_suite", "updated_at"),),
    "check_run": (("check_run", "completed_at"), ("check_run", "started_at")),
    "deployment": (("deployment", "updated_at"),),
    "deployment_status": (("deployment_status", "updated_at"), ("deployment_status", "created_at")),
    "status": (("updated_at",),),
    "release": (("release", "published_at"), ("release", "created_at")),
    "registry_package": (("registry_package", "package_version", "updated_at"),
                         ("registry_package", "updated_at")),
    "package": (("package", "package_version", "updated_at"), ("package", "updated_at")),
    "pull_request": (("pull_request", "updated_at"),),
}

_WORKFLOW_RUN_STAGE = {
    "requested": event_types.PIPELINERUN_QUEUED,
    "in_progress": event_types.PIPELINERUN_STARTED,
    "completed": event_types.PIPELINERUN_FINISHED,
}
_CONCLUSION_OUTCOME = {
    "success": "success", "neutral": "success",
    "failure": "failure", "timed_out": "failure", "startup_failure": "failure",
    "cancelled": "cancel", "skipped": "cancel", "stale": "cancel",
}


@plugins.settings_section("github")
class GithubSettings(Section):
    secrets: list[SecretStr] = []
    """Webhook secrets; several are accepted so a secret can be rotated without downtime."""


@plugins.webhook_source("github")
class GithubSource:
    def __init__(self, settings: Settings) -> None:
        self.secrets = settings.github.secrets

    def delivery_id(self, delivery: Delivery) -> str:
        return safe_token(delivery, "X-GitHub-Delivery")

    def authenticate(self, delivery: Delivery) -> None:
        if not self.secrets:
            raise errors.Unauthorized("no GitHub webhook secret is configured (github.secrets)")
        header = delivery.headers.get("X-Hub-Signature-256")
        if not header:
            raise errors.Unauthorized("missing X-Hub-Signature-256 header")
        scheme, _, signature = header.partition("=")
        if scheme != "sha256" or not signature:
            raise errors.Unauthorized("X-Hub-Signature-256 must look like sha256=<hex>")
        if not auth.hmac_sha256_matches(delivery.body, signature, self.secrets):
            raise errors.Unauthorized("X-Hub-Signature-256 does not match any configured secret")

    def normalize(self, delivery: Delivery) -> list[events.CloudEvent]:
        name = delivery.headers.get("X-GitHub-Event")
        if not name:
            raise errors.BadRequest("missing X-GitHub-Event header", field="X-GitHub-Event")
        if not _NAME.match(name):
            raise errors.BadRequest("X-GitHub-Event must be a GitHub event name (1-64 of a-z, 0-9, _)",
                                    field="X-GitHub-Event")
        delivery_id = header_token(delivery, "X-GitHub-Delivery")
        if not delivery_id:
            raise errors.BadRequest("missing X-GitHub-Delivery header", field="X-GitHub-Delivery")
        payload = load_object(delivery.body)
        if name == "ping":
            return []
        action = payload.get("action") if isinstance(payload.get("action"), str) else None
        if action is not None and not _NAME.match(action):
            raise errors.BadRequest("action must be a GitHub action name (1-64 of a-z, 0-9, _)", field="action")
        attributes = {
            "id": delivery_id,
            "source": _source(payload),
            "type": event_types.github(name, action),
        }
        subject = scalar_text(payload, *_SUBJECT.get(name, ()))
        if subject is not None:
            attributes["subject"] = subject
        time = events.rfc3339(first(payload, *_TIME.get(name, ())))
        if time:
            attributes["time"] = time
        event = events.make(attributes, payload, raw=delivery.body)
        translate = _CDEVENTS.get(name)
        derived = translate(event, payload, action) if translate else None
        return [event, derived] if derived else [event]


def _source(payload: dict[str, Any]) -> str:
    return first(payload, ("repository", "html_url"), ("organization", "html_url"),
                 ("sender", "html_url")) or "https://github.com"


def _workflow_run(event: events.CloudEvent, payload: dict, action: str | None) -> events.CloudEvent | None:
    cdevent_type = _WORKFLOW_RUN_STAGE.get(action or "")
    run = payload.get("workflow_run")
    if not cdevent_type or not isinstance(run, dict):
        return None
    html_url = optional(run, "html_url", prefix="workflow_run.")
    content: dict[str, Any] = {"pipelineName": str(run.get("name") or dig(payload, "workflow", "name") or "workflow"),
                               "uri": html_url or event.source}
    if cdevent_type == event_types.PIPELINERUN_FINISHED:
        conclusion = optional(run, "conclusion", prefix="workflow_run.") or "unknown"
        content["outcome"] = _CONCLUSION_OUTCOME.get(conclusion, "error")
        if content["outcome"] != "success":
            content["errors"] = f"workflow run concluded {conclusion}"
    return cdevents.derive(event, cdevent_type, subject_id=str(run.get("id")), content=content,
                           chain_key=str(html_url or run.get("id")),
                           subject_source=event.source)


def _container_published(event: events.CloudEvent, payload: dict, action: str | None) -> events.CloudEvent | None:
    key = "registry_package" if payload.get("registry_package") else "package"
    package = payload.get(key)
    if action != "published" or not isinstance(package, dict) or not _is_container(package):
        return None
    version = optional(package, "package_version", kind=dict, prefix=f"{key}.") or {}
    where = f"{key}.package_version."
    digest = next((d for d in (version.get("version"), dig(version, "container_metadata", "manifest", "digest"),
                               dig(version, "container_metadata", "tag", "digest"))
                   if isinstance(d, str) and _DIGEST.match(d)), None)
    if digest is None:
        log.warning("GitHub package publish %s carries no sha256 digest; no artifact event", event.id)
        return None
    repository = _container_repository(package, version, where)
    tag = optional(version, "container_metadata", "tag", "name", prefix=where)
    media_type = optional(version, "container_metadata", "manifest", "media_type", prefix=where)
    # The same artifact event as every registry source (plugins.artifacts), so rules need not care.
    return artifacts.published(event, artifacts.Push("github", repository, digest, tag, media_type))


def _is_container(package: dict) -> bool:
    kinds = {str(package.get("package_type", "")).lower(), str(package.get("ecosystem", "")).lower(),
             str(dig(package, "registry", "type") or "").lower()}
    return bool(kinds & {"container", "docker"})


def _container_repository(package: dict, version: dict, where: str) -> str:
    """``ghcr.io/<owner>/<image>``, from the pull reference GitHub reports."""
    package_url = optional(version, "package_url", prefix=where) or ""
    if package_url:
        return package_url.rsplit("@", 1)[0].rsplit(":", 1)[0] if ":" in package_url.split("/")[-1] else package_url
    owner = dig(package, "owner", "login") or dig(package, "namespace") or "unknown"
    return f"ghcr.io/{owner}/{package.get('name')}"


_CDEVENTS: dict[str, Callable[[events.CloudEvent, dict, str | None], events.CloudEvent | None]] = {
    "workflow_run": _workflow_run,
    "registry_package": _container_published,
    "package": _container_published,
}
