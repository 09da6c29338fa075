"""Consumer backlogs as gauges: how much work is waiting, for ``/metrics`` and the backlog alert.

JetStream knows, per durable consumer, how many messages it has not handed out yet
(``num_pending``: events not yet routed, runs not yet taken) and how many are out but not
acknowledged (``num_ack_pending``: runs in progress, and runs naked to wait for their policy:
debounce, delay, a concurrency slot). Every router reads the same numbers; each sets its own gauges
from them every ``metrics.poll_interval``, so any replica's scrape answers. Subscription consumers
are summed into one ``subscriptions`` series: their names hold subscription ids, and ids are never
labels.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict

from router.bus import consumers
from router.bus.connection import Bus
from router.bus.kv import NATS_ERRORS
from router.config.settings import Settings
from router.telemetry import metrics

log = logging.getLogger(__name__)

SUBSCRIPTION_PREFIX = "sub-"
"""Durable names starting with this are subscription deliverers (``subscriptions.delivery.durables``),
summed as ``subscriptions``."""


def label(durable: str) -> str:
    return "subscriptions" if durable.startswith(SUBSCRIPTION_PREFIX) else durable


async def poll(bus: Bus, settings: Settings) -> None:
    """Forever: read every consumer this process uses and set the backlog gauges."""
    while True:
        await bus.wait_ready()
        totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for subscription in consumers.subscriptions(bus.js):
            consumer = subscription.consumer
            try:
                info = await bus.js.consumer_info(consumer.stream, consumer.durable)
            except NATS_ERRORS as exc:
                log.debug("backlog of %s unknown: %s", consumer.label, exc)
                continue
            numbers = totals[label(consumer.durable)]
            numbers[0] += info.num_pending or 0
            numbers[1] += info.num_ack_pending or 0
        for name, (pending, ack_pending) in totals.items():
            metrics.consumer(name, pending, ack_pending)
        await asyncio.sleep(settings.metrics.poll_interval)
