"""CNCF distribution registry (``registry:2``, ``docker-registry``) notifications.

The registry posts an envelope (``application/vnd.docker.distribution.events.v1+json``) holding one
or more events, with the headers configured for the endpoint: set ``Authorization: [Bearer
<secret>]``. It retries an envelope until it gets a 2xx and holds back the endpoint's queue meanwhile,
so the answer is per batch: every push of a manifest is stored, pulls and blob (layer, config) events
are skipped, and an event that is not understood is dead-lettered with the reason (``plugins.Rejected``)
rather than refused, which would retry the whole envelope forever. Only a malformed envelope is a 400.

Each event has its own ``id`` (kept across the registry's retries), used as the event id. Manifests
pushed by digest (the platform manifests of a multi-architecture index) carry no ``tag``; see
``push`` for why those get no artifact event by default.
"""

from __future__ import annotations

from typing import Any

from handlers.sources.registries import push
from handlers.sources.registries import settings as registry_settings
from handlers.sources.registries import webhook_auth
from router import plugins
from router.plugins import Delivery, Rejected, Settings, artifacts, errors, event_types, events


@plugins.settings_section("registries.distribution")
class DistributionSettings(registry_settings.WebhookSecrets):
    host: str | None = None
    """Registry host name written into artifact purls; default the ``request.host`` of each event
    (what the pushing client used, which behind a proxy may be an internal name)."""

ENVELOPE_MEDIA_TYPE = "application/vnd.docker.distribution.events.v1+json"


@plugins.webhook_source("distribution")
class DistributionSource(webhook_auth.SharedSecretSource):
    name = "distribution"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.host = settings.registries.distribution.host

    async def normalize(self, delivery: Delivery) -> list[events.CloudEvent | Rejected]:
        envelope = push.load_object(delivery)
        items = envelope.get("events")
        if not isinstance(items, list):
            raise errors.BadRequest("the envelope has no events array", field="events")
        result: list[events.CloudEvent | Rejected] = []
        for index, item in enumerate(items):
            if not _is_manifest_push(item):
                continue  # pulls, deletes, blobs: not pushes of an artifact
            try:
                result += self._push(item, index)
            except errors.BadRequest as exc:
                result.append(Rejected(exc.detail, item, f"events[{index}].{exc.field}"
                                                  if exc.field else f"events[{index}]", index))
        return result

    def _push(self, item: dict[str, Any], index: int) -> list[events.CloudEvent]:
        event_id = push.require(item, "id")
        digest = push.digest(push.require(item, "target", "digest"), "target.digest")
        repository = push.require(item, "target", "repository")
        host = self.host or push.require(item, "request", "host")
        pushed = artifacts.Push("distribution", f"{host}/{repository}", digest,
                                push.optional(item, "target", "tag"), push.optional(item, "target", "mediaType"))
        return push.events_for(pushed, event_type=event_types.DISTRIBUTION_PUSH, event_id=event_id,
                               payload=item, time=push.timestamp(item.get("timestamp")),
                               untagged=self.untagged)


def _is_manifest_push(item: Any) -> bool:
    """A push of a manifest; an item too broken to tell counts as one, so it is dead-lettered."""
    if not isinstance(item, dict) or item.get("action") != "push":
        return not isinstance(item, dict) or "action" not in item
    target = item.get("target")
    if not isinstance(target, dict):
        return True
    media_type = target.get("mediaType")
    if not isinstance(media_type, (str, type(None))) or media_type in artifacts.MANIFEST_MEDIA_TYPES:
        return True  # a media type of the wrong JSON type is dead-lettered by _push, naming it
    return "/manifests/" in str(target.get("url", "")) and not media_type
