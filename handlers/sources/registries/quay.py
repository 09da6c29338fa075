"""Quay (quay.io or self-hosted) "Repository Push" notifications sent as webhooks.

Quay's webhook notification has no signature either; the secret is the last path segment:
``/webhooks/quay/<secret>``. One notification lists every tag the push updated (``updated_tags``: a
list in current Quay, a tag -> image-id mapping in old payloads whose ids are not manifest digests),
so each tag is resolved through the registry API (``https://<host of docker_url>`` unless
``registries.quay.api_url`` says otherwise) and becomes its own event. The payload carries no time or
id; the event id is derived from (repository, tag, digest), so a redelivery deduplicates and a push
of new content to the same tag does not.
"""

from __future__ import annotations

from handlers.sources.registries import digests, push
from handlers.sources.registries import settings as registry_settings
from handlers.sources.registries import webhook_auth
from router import plugins
from router.plugins import Delivery, Settings, artifacts, cdevents, errors, event_types, events


@plugins.settings_section("registries.quay")
class QuaySettings(registry_settings.ResolvingRegistry):
    api_url: str = ""
    """Default: ``https://<host of the payload's docker_url>`` (quay.io or a self-hosted Quay)."""


@plugins.webhook_source("quay")
class QuaySource(webhook_auth.SharedSecretSource):
    name = "quay"
    secret_in = "path"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.config = settings.registries.quay
        self.timeout = settings.registries.resolve_timeout
        self.attempts = settings.registries.resolve_attempts
        self.resolvers: dict[str, digests.Resolver] = {}

    async def normalize(self, delivery: Delivery) -> list[events.CloudEvent]:
        payload = push.load_object(delivery)
        docker_url = push.require(payload, "docker_url").strip("/")
        host, _, path = docker_url.partition("/")
        if not path:
            raise errors.BadRequest("docker_url must look like <host>/<namespace>/<name>", field="docker_url")
        tags = payload.get("updated_tags")
        tags = list(tags) if isinstance(tags, (list, dict)) else []
        if not tags or not all(isinstance(t, str) and t for t in tags):
            raise errors.BadRequest("payload has no updated_tags", field="updated_tags")
        resolver = self._resolver(host)
        published: list[events.CloudEvent] = []
        for tag in tags:
            digest = await resolver.digest(path, tag)
            pushed = artifacts.Push("quay", docker_url, digest, tag)
            published += push.events_for(
                pushed, event_type=event_types.QUAY_PUSH,
                event_id=cdevents.deterministic_id("quay", docker_url, tag, digest),
                payload=payload, time=None, untagged=self.untagged)
        return published

    def _resolver(self, host: str) -> digests.Resolver:
        api_url = self.config.api_url or f"https://{host}"
        if api_url not in self.resolvers:
            self.resolvers[api_url] = digests.Resolver(
                api_url, digests.Credentials(self.config.username, self.config.password),
                timeout=self.timeout, attempts=self.attempts)
        return self.resolvers[api_url]
