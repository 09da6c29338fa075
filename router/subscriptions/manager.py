"""Deliverers started and stopped as subscriptions come and go, in every router process.

Each delivering process (``subscriptions.deliver``) runs this as the supervised part
``subscriptions``: it watches the KV bucket (``store.watch``: every subscription first, then every
change) and keeps one supervised part ``subscription/<id>`` (a ``delivery.Deliverer``) per
subscription, so a failing deliverer is restarted with backoff and shown in ``/readyz`` like any
other part. Several processes run the same deliverers on the same durable consumers, which share
the work between them.

- created: a deliverer is started on the consumers the API created;
- updated: the deliverer is restarted with the new document on the same consumers, so delivery
  continues where it was, with the new filters and sink;
- deleted: the deliverer is stopped, then the subscription's consumers are deleted. Every process
  does both (deleting is idempotent), and each stops its own deliverer before deleting, so a
  consumer re-created by a deliverer still running elsewhere is deleted by that process in turn.

If the watch itself fails (NATS gone for good), this part is restarted and is told the whole state
again; deliverers whose revision has not changed are left running.
"""

from __future__ import annotations

import functools
import logging

from router import errors
from router.bus.connection import Bus
from router.config.settings import Settings
from router.engine import supervisor as supervision
from router.subscriptions import delivery
from router.subscriptions.store import Store, Stored

__all__ = ["Manager", "part_name"]

log = logging.getLogger(__name__)


def part_name(subscription_id: str) -> str:
    return f"subscription/{subscription_id}"


class Manager:
    def __init__(self, bus: Bus, settings: Settings, supervisor: supervision.Supervisor) -> None:
        self.bus = bus
        self.settings = settings
        self.supervisor = supervisor
        self.running: dict[str, int] = {}
        """Revision each running deliverer was started with, by subscription id; kept across restarts."""

    async def run(self) -> None:
        await self.bus.wait_ready()
        store = await Store.open(self.bus, self.settings)
        log.info("delivering subscriptions (%d running)", len(self.running))
        async for subscription_id, stored in store.watch():
            if stored is None:
                await self.stop(subscription_id)
            elif self.running.get(subscription_id) != stored.revision:
                await self.start(stored)

    async def start(self, stored: Stored) -> None:
        subscription_id = stored.subscription.id
        name = part_name(subscription_id)
        verb = "restarting" if subscription_id in self.running else "starting"
        await self.supervisor.remove(name)
        self.supervisor.add(name, functools.partial(delivery.Deliverer(self.bus, self.settings, stored).run))
        self.running[subscription_id] = stored.revision
        log.info("%s delivery of subscription %s to %s", verb, subscription_id, stored.subscription.sink)

    async def stop(self, subscription_id: str) -> None:
        was_running = self.running.pop(subscription_id, None) is not None
        await self.supervisor.remove(part_name(subscription_id))
        try:
            await delivery.delete_consumers(self.bus, self.settings, subscription_id)
        except errors.BusUnavailable as exc:  # another process, or the next watch, deletes them
            log.warning("subscription %s deleted; its consumers not yet: %s", subscription_id, exc.detail)
        if was_running:
            log.info("stopped delivery of deleted subscription %s", subscription_id)
