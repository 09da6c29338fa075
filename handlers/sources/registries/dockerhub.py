"""Docker Hub repository webhooks: a push of ``<repo_name>:<tag>``.

Docker Hub does not sign its webhooks and sends no secret header, so the secret is the last path
segment of the URL configured in Docker Hub: ``/webhooks/dockerhub/<secret>``. The payload names
the tag but not the digest, which is resolved through the registry API
(``registries.dockerhub.api_url``, default ``https://registry-1.docker.io``) before publishing.

The event id is derived from (repository, tag, ``pushed_at``, digest): a redelivery of the same
webhook is the same event, a later push to the same tag is a new one.
"""

from __future__ import annotations

from handlers.sources.payload import dig
from handlers.sources.registries import digests, push
from handlers.sources.registries import settings as registry_settings
from handlers.sources.registries import webhook_auth
from router import plugins
from router.plugins import Delivery, Settings, artifacts, cdevents, event_types, events

REPOSITORY_HOST = "docker.io"


@plugins.settings_section("registries.dockerhub")
class DockerHubSettings(registry_settings.ResolvingRegistry):
    api_url: str = "https://registry-1.docker.io"


@plugins.webhook_source("dockerhub")
class DockerHubSource(webhook_auth.SharedSecretSource):
    name = "dockerhub"
    secret_in = "path"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        config = settings.registries
        self.resolver = digests.Resolver(
            config.dockerhub.api_url, digests.Credentials(config.dockerhub.username, config.dockerhub.password),
            timeout=config.resolve_timeout, attempts=config.resolve_attempts)

    async def normalize(self, delivery: Delivery) -> list[events.CloudEvent]:
        payload = push.load_object(delivery)
        repo_name = push.repository_name(push.require(payload, "repository", "repo_name"), "repository.repo_name")
        tag = push.tag_name(push.require(payload, "push_data", "tag"), "push_data.tag")
        digest = await self.resolver.digest(repo_name, tag)
        pushed_at = dig(payload, "push_data", "pushed_at")
        pushed = artifacts.Push("dockerhub", f"{REPOSITORY_HOST}/{repo_name}", digest, tag)
        return push.events_for(
            pushed, event_type=event_types.DOCKERHUB_PUSH,
            event_id=cdevents.deterministic_id("dockerhub", repo_name, tag, str(pushed_at), digest),
            payload=payload, time=push.timestamp(pushed_at), untagged=self.untagged)
