"""Harbor project webhooks (the "Default" payload format), ``PUSH_ARTIFACT`` events.

Harbor sends the policy's "Auth Header" value verbatim as ``Authorization``; configure it as
``Bearer <secret>`` (or the bare secret). One notification can list several resources (artifacts) of
one repository; each with a digest becomes its own event. Other event types (pulls, deletes, scans,
quota) are accepted and not published. Harbor sends no delivery id: the event id is derived from
(type, ``occur_at``, repository, digest, tag).
"""

from __future__ import annotations

from handlers.sources.registries import push
from handlers.sources.registries import settings as registry_settings
from handlers.sources.registries import webhook_auth
from router import plugins
from router.plugins import Delivery, artifacts, cdevents, event_types, events


@plugins.settings_section("registries.harbor")
class HarborSettings(registry_settings.WebhookSecrets):
    pass


@plugins.webhook_source("harbor")
class HarborSource(webhook_auth.SharedSecretSource):
    name = "harbor"

    async def normalize(self, delivery: Delivery) -> list[events.CloudEvent]:
        payload = push.load_object(delivery)
        kind = push.require(payload, "type")
        if kind != "PUSH_ARTIFACT":
            return []
        repo_full_name = push.require(payload, "event_data", "repository", "repo_full_name")
        resources = push.require(payload, "event_data", "resources", kind=list)
        published: list[events.CloudEvent] = []
        for index in range(len(resources)):
            where = ("event_data", "resources", index)
            digest = push.digest(push.require(payload, *where, "digest"), f"event_data.resources[{index}].digest")
            resource_url = push.require(payload, *where, "resource_url")
            host = resource_url.split("/", 1)[0]
            tag = push.optional(payload, *where, "tag")
            pushed = artifacts.Push("harbor", f"{host}/{repo_full_name}", digest, tag)
            published += push.events_for(
                pushed, event_type=event_types.HARBOR_PUSH,
                event_id=cdevents.deterministic_id("harbor", kind, str(payload.get("occur_at")),
                                                   pushed.repository, digest, tag or ""),
                payload=payload, time=push.timestamp(payload.get("occur_at")), untagged=self.untagged)
        return published
