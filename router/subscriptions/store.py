"""Subscriptions kept in a JetStream KV bucket, shared by every router process.

One key per subscription (its id), whose value is the realized document plus when it was created:
``{"subscription": {...}, "created": <epoch seconds>}``. ``created`` is where deliveries start if
the consumers the API created were lost before any process bound them (``delivery``).

The bucket is ``subscriptions.bucket`` with ``bus.replicas`` replicas, opened through the one KV
wrapper (``router.bus.kv``), which also makes readiness check it and re-creates it after a server
lost its store. Updates are compare-and-set on the revision read, so two clients updating one
subscription at once cannot interleave halves of their documents.

Limits: ``subscriptions.max_subscriptions`` is checked before each create; creates racing on
several replicas may together exceed it by one per replica.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any, AsyncIterator

from pydantic import ValidationError

from router import errors
from router.bus import kv
from router.bus.connection import Bus
from router.config.settings import Settings
from router.subscriptions.model import Subscription

__all__ = ["Store", "Stored", "new_id"]

log = logging.getLogger(__name__)

_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")
"""Ids this manager assigns are UUIDs; a path that cannot be one is simply not found."""


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True, slots=True)
class Stored:
    subscription: Subscription
    created: float
    revision: int

    @classmethod
    def of(cls, value: dict, revision: int) -> "Stored":
        return cls(Subscription.model_validate(value["subscription"]), float(value["created"]), revision)


class Store:
    def __init__(self, bucket: kv.Bucket, settings: Settings) -> None:
        self.bucket = bucket
        self.settings = settings

    @classmethod
    async def open(cls, bus: Bus, settings: Settings) -> "Store":
        """``errors.BusUnavailable`` while NATS cannot be reached (the edge answers 503)."""
        if not bus.connected or bus.js is None:
            raise errors.BusUnavailable("not connected to NATS JetStream")
        bucket = await kv.open_bucket(bus.js, settings.subscriptions.bucket, what="subscriptions",
                                      description="trigger-router: CloudEvents subscriptions",
                                      replicas=settings.bus.replicas)
        return cls(bucket, settings)

    async def check_room(self) -> None:
        """``errors.Conflict`` when ``subscriptions.max_subscriptions`` are stored already."""
        limit = self.settings.subscriptions.max_subscriptions
        if len(await self.bucket.keys()) >= limit:
            raise errors.Conflict(f"this manager holds {limit} subscriptions, the limit "
                                  "(subscriptions.max_subscriptions); delete one first",
                                  limit="subscriptions.max_subscriptions")

    async def create(self, subscription: Subscription) -> Stored:
        await self.check_room()
        value = {"subscription": subscription.document(), "created": time.time()}
        revision = await self.bucket.create(subscription.id, value)
        if revision is None:  # a UUID collision: never in practice, but never an overwrite either
            raise errors.Conflict(f"a subscription with id {subscription.id} exists", field="id")
        return Stored.of(value, revision)

    async def get(self, subscription_id: str) -> Stored | None:
        if not _ID.match(subscription_id):
            return None
        entry = await self.bucket.get(subscription_id)
        return Stored.of(entry.value, entry.revision) if entry and entry.value else None

    async def list(self) -> list[Stored]:
        found = [stored async for key, value in self.bucket.scan() if value
                 if (stored := _readable(key, value, 0)) is not None]
        return sorted(found, key=lambda stored: (stored.created, stored.subscription.id))

    async def update(self, subscription: Subscription) -> Stored | None:
        """The subscription replaced (its start time kept); ``None`` if there is none with its id."""
        while True:
            current = await self.get(subscription.id)
            if current is None:
                return None
            value = {"subscription": subscription.document(), "created": current.created}
            revision = await self.bucket.update(subscription.id, value, current.revision)
            if revision is not None:
                return Stored.of(value, revision)

    async def delete(self, subscription_id: str) -> Stored | None:
        """The subscription removed; ``None`` if there was none."""
        while True:
            current = await self.get(subscription_id)
            if current is None:
                return None
            if await self.bucket.delete(subscription_id, current.revision):
                return current

    async def watch(self) -> AsyncIterator[tuple[str, Stored | None]]:
        """Every subscription, then every change: ``(id, stored)``, ``stored`` ``None`` once deleted."""
        async for key, value, revision in self.bucket.watch():
            if not value:
                yield key, None
            elif (stored := _readable(key, value, revision)) is not None:
                yield key, stored


def _readable(key: str, value: Any, revision: int) -> Stored | None:
    """The stored subscription, or ``None`` (logged) for an entry this version cannot read: one
    bad entry (written by hand, or by another version) must not stop every other subscription."""
    try:
        return Stored.of(value, revision)
    except (ValidationError, KeyError, TypeError, ValueError) as exc:
        log.error("subscription %s in the bucket cannot be read and is skipped: %s", key,
                  str(exc).splitlines()[0])
        return None
