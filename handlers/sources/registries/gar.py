"""Google Artifact Registry notifications through a Pub/Sub push subscription.

Artifact Registry publishes to the ``gcr`` topic a JSON message ``{"action": "INSERT", "digest":
"<host>/<project>/<repo>/<image>@sha256:...", "tag": "<host>/.../<image>:<tag>"}`` (an image upload
or a tag added; ``DELETE`` for deletions, not published). A push subscription posts it wrapped as
``{"message": {"data": <base64>, "messageId": ..., "publishTime": ...}, "subscription": ...}``;
``messageId`` is kept across Pub/Sub's redeliveries and is the event id.

Two ways to authenticate, both enforced when both are configured: a shared secret as the last path
segment (``/webhooks/gar/<secret>``), and the subscription's OIDC token (``oidc``), verified against
configured keys. Any non-2xx answer makes Pub/Sub redeliver, so a malformed message is a 400 the
operator sees in the subscription's metrics (dead-letter topics are Pub/Sub's own feature).
"""

from __future__ import annotations

import base64

from handlers.sources.registries import oidc, push
from handlers.sources.registries import settings as registry_settings
from handlers.sources.registries import webhook_auth
from handlers.sources.registries.oidc import PubSubOidcSettings
from router import plugins
from router.plugins import Delivery, Settings, artifacts, errors, event_types, events


@plugins.settings_section("registries.gar")
class GarSettings(registry_settings.WebhookSecrets):
    oidc: PubSubOidcSettings = PubSubOidcSettings()


@plugins.webhook_source("gar")
class GarSource:
    def __init__(self, settings: Settings) -> None:
        self.config = settings.registries.gar
        self.untagged = settings.registries.untagged
        self.keys = oidc.load_keys(self.config.oidc.public_key_files)

    def delivery_id(self, delivery: Delivery) -> str:
        return ""

    def authenticate(self, delivery: Delivery) -> None:
        if self.config.oidc.audience is None and not self.config.secrets:
            raise errors.Unauthorized("neither a secret (registries.gar.secrets) nor OIDC verification "
                                      "(registries.gar.oidc.audience) is configured")
        if self.config.secrets:
            webhook_auth.path_token(delivery, self.config.secrets, "registries.gar.secrets")
        if self.config.oidc.audience is not None:
            oidc.verify(delivery.headers.get("Authorization"), self.config.oidc, self.keys)

    async def normalize(self, delivery: Delivery) -> list[events.CloudEvent]:
        envelope = push.load_object(delivery)
        message_id = push.require(envelope, "message", "messageId")
        encoded = push.require(envelope, "message", "data")
        try:
            decoded = base64.b64decode(encoded, validate=True)
        except ValueError as exc:  # binascii.Error, or text that is not ASCII
            raise errors.BadRequest("message.data is not base64-encoded JSON", field="message.data") from exc
        notification = events.load_json(decoded, what="message.data", field="message.data")
        if not isinstance(notification, dict):
            raise errors.BadRequest("message.data must hold a JSON object", field="message.data")
        if push.require(notification, "action") != "INSERT":
            return []
        reference = push.require(notification, "digest")
        repository, _, digest = reference.partition("@")
        push.digest(digest, "digest")
        if "/" not in repository.strip("/"):
            raise errors.BadRequest("digest must name the image: <host>/<project>/<repository>/<image>@sha256:<hex>",
                                    field="digest")
        tag = None
        tagged = push.optional(notification, "tag")
        if tagged:
            image, _, tag = tagged.rpartition(":")
            if image != repository or "/" in tag:
                raise errors.BadRequest("tag does not name the same image as digest", field="tag")
        pushed = artifacts.Push("gar", repository, digest, tag)
        return push.events_for(pushed, event_type=event_types.GAR_PUSH, event_id=message_id,
                               payload=notification, time=push.timestamp(envelope["message"].get("publishTime")),
                               untagged=self.untagged)
