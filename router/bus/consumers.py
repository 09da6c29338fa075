"""Durable JetStream pull consumers shared by several router processes.

The event router and the run executor pull the same way: a durable consumer that every process
with the same ``router.durable`` shares, fetched in batches with a short timeout so the loop stays
responsive, and left in place on shutdown for the other processes. The quirks of doing that with
nats-py on Python 3.11 live here once.
"""

from __future__ import annotations

import asyncio
import logging

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

log = logging.getLogger(__name__)

FETCH_TIMEOUT = 1.0
RETRY_PAUSE = 1.0


async def subscribe(js: JetStreamContext, *, subject: str, stream: str, durable: str, ack_wait: float,
                    max_ack_pending: int):
    config = api.ConsumerConfig(durable_name=durable, ack_policy=api.AckPolicy.EXPLICIT,
                                deliver_policy=api.DeliverPolicy.ALL, ack_wait=ack_wait,
                                max_ack_pending=max_ack_pending, filter_subject=subject)
    return await js.pull_subscribe(subject, durable=durable, stream=stream, config=config)


async def fetch(subscription, batch: int, what: str) -> list[Msg]:
    """Up to ``batch`` messages; none when nothing arrived in time or the server could not answer."""
    try:
        return await subscription.fetch(batch, timeout=FETCH_TIMEOUT)
    except (asyncio.TimeoutError, nats.errors.TimeoutError):
        # Python 3.11's wait_for turns a cancellation that races its timeout into TimeoutError
        # (fixed in 3.12): a loop that retries on timeouts would then never stop.
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise asyncio.CancelledError from None
        return []
    except (nats.errors.Error, nats.js.errors.Error) as exc:
        log.warning("fetching %s failed (%s); retrying", what, exc)
        await asyncio.sleep(RETRY_PAUSE)
        return []


async def unsubscribe(subscription) -> None:
    """Stop pulling; the durable consumer stays for the other routers."""
    try:
        await subscription.unsubscribe()
    except (nats.errors.Error, nats.js.errors.Error, asyncio.TimeoutError):
        pass
