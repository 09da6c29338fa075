"""Quay (quay.io or self-hosted) "Repository Push" notifications sent as webhooks.

Quay's webhook notification has no signature either; the secret is the last path segment:
``/webhooks/quay/<secret>``. One notification lists every tag the push updated (``updated_tags``: a
list in current Quay, a tag -> image-id mapping in old payloads whose ids are not manifest digests),
so each tag is resolved through the registry API and becomes its own event. The payload carries no
time or id; the event id is derived from (repository, tag, digest), so a redelivery deduplicates and
a push of new content to the same tag does not.

Where the API is asked is configuration, never the payload: ``registries.quay.api_url`` when set,
else ``https://<host>`` for a ``docker_url`` host listed in ``registries.quay.hosts`` (default
``quay.io``). A notification naming any other host is refused (400) before any request, because the
request carries ``username``/``password``: taking the host from the payload would send them to
whoever a notification names.
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
    """Base URL of the registry API v2 that resolves every notification's tags, whatever host its
    ``docker_url`` names (a self-hosted Quay). Empty: ``https://<host>`` for a host in ``hosts``."""
    hosts: list[str] = ["quay.io"]
    """With ``api_url`` empty, the hosts (``host[:port]``) a notification's ``docker_url`` may name;
    their API is asked at ``https://<host>``, with the credentials. Any other host is refused."""


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
        push.repository_name(path, "docker_url")
        tags = payload.get("updated_tags")
        tags = list(tags) if isinstance(tags, (list, dict)) else []
        if not tags or not all(isinstance(t, str) and t for t in tags):
            raise errors.BadRequest("payload has no updated_tags", field="updated_tags")
        for tag in tags:
            push.tag_name(tag, "updated_tags")
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
        if self.config.api_url:
            api_url = self.config.api_url
        elif host.lower() in {h.lower() for h in self.config.hosts}:
            api_url = f"https://{host.lower()}"
        else:
            raise errors.BadRequest("docker_url names a host that is not configured (registries.quay.hosts, "
                                    "or registries.quay.api_url for a self-hosted Quay)", field="docker_url")
        if api_url not in self.resolvers:
            self.resolvers[api_url] = digests.Resolver(
                api_url, digests.Credentials(self.config.username, self.config.password),
                timeout=self.timeout, attempts=self.attempts)
        return self.resolvers[api_url]
