"""Amazon ECR pushes through an EventBridge rule with an API destination.

The rule matches ``{"source": ["aws.ecr"], "detail-type": ["ECR Image Action"]}`` and targets an API
destination whose connection uses API-key authorization with key ``Authorization`` and value
``Bearer <secret>``. EventBridge posts the event unchanged; only ``action-type: PUSH`` with
``result: SUCCESS`` is a push (failed pushes and deletes are accepted and not published). The
repository host is ``<account>.dkr.ecr.<region>.amazonaws.com``; the id is EventBridge's event id,
which its retries keep.
"""

from __future__ import annotations

from handlers.sources.registries import push
from handlers.sources.registries import settings as registry_settings
from handlers.sources.registries import webhook_auth
from router import plugins
from router.plugins import Delivery, artifacts, event_types, events

DETAIL_TYPE = "ECR Image Action"


@plugins.settings_section("registries.ecr")
class EcrSettings(registry_settings.WebhookSecrets):
    pass


@plugins.webhook_source("ecr")
class EcrSource(webhook_auth.SharedSecretSource):
    name = "ecr"

    async def normalize(self, delivery: Delivery) -> list[events.CloudEvent]:
        payload = push.load_object(delivery)
        if push.require(payload, "detail-type") != DETAIL_TYPE:
            return []
        detail = push.require(payload, "detail", kind=dict)
        if detail.get("action-type") != "PUSH" or detail.get("result") != "SUCCESS":
            return []
        event_id = push.require(payload, "id")
        digest = push.digest(push.require(payload, "detail", "image-digest"), "detail.image-digest")
        name = push.require(payload, "detail", "repository-name")
        account = push.require(payload, "account")
        region = push.require(payload, "region")
        suffix = ".amazonaws.com.cn" if region.startswith("cn-") else ".amazonaws.com"
        pushed = artifacts.Push("ecr", f"{account}.dkr.ecr.{region}{suffix}/{name}", digest,
                                push.optional(payload, "detail", "image-tag"),
                                push.optional(payload, "detail", "manifest-media-type"))
        return push.events_for(pushed, event_type=event_types.ECR_PUSH, event_id=event_id, payload=payload,
                               time=push.timestamp(payload.get("time")), untagged=self.untagged)
