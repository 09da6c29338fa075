"""Azure Container Registry webhooks, ``push`` action.

ACR adds no signature; give the webhook a custom header ``Authorization: Bearer <secret>``. The
payload is one event in the distribution registry's event shape (``target.digest``,
``target.repository``, ``target.tag``, ``request.host``); its ``id`` is the event id. ``ping``,
``delete``, ``quarantine`` and Helm ``chart_*`` actions are accepted and not published.
"""

from __future__ import annotations

from handlers.sources.registries import push
from handlers.sources.registries import settings as registry_settings
from handlers.sources.registries import webhook_auth
from router import plugins
from router.plugins import Delivery, artifacts, event_types, events


@plugins.settings_section("registries.acr")
class AcrSettings(registry_settings.WebhookSecrets):
    pass


@plugins.webhook_source("acr")
class AcrSource(webhook_auth.SharedSecretSource):
    name = "acr"

    async def normalize(self, delivery: Delivery) -> list[events.CloudEvent]:
        payload = push.load_object(delivery)
        if push.require(payload, "action") != "push":
            return []
        event_id = push.require(payload, "id")
        digest = push.digest(push.require(payload, "target", "digest"), "target.digest")
        repository = push.require(payload, "target", "repository")
        host = push.require(payload, "request", "host")
        pushed = artifacts.Push("acr", f"{host}/{repository}", digest, push.optional(payload, "target", "tag"),
                                push.optional(payload, "target", "mediaType"))
        return push.events_for(pushed, event_type=event_types.ACR_PUSH, event_id=event_id, payload=payload,
                               time=push.timestamp(payload.get("timestamp")), untagged=self.untagged)
