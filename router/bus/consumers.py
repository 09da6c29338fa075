"""Durable JetStream pull consumers shared by several router processes.

The event router and the run executor pull the same way: a durable consumer that every process
with the same ``router.durable`` shares, fetched in batches with a short timeout so the loop stays
responsive, and left in place on shutdown for the other processes. The quirks of doing that with
nats-py on Python 3.11 live here once, and so does what keeps a consumer alive:

- **where a new consumer starts** (``router.start``) is decided only when the consumer does not
  exist yet, and logged; an existing consumer is used as it is;
- **a consumer that disappears** (the server lost its store, someone deleted it) is re-created with
  the same name, so the subscriptions already open keep working. It restarts from shortly before it
  was last seen working (a repeated event is harmless: run ids are deduplicated), or from the start
  of a work-queue stream, whose messages are all pending work;
- **what this process needs** (every consumer it declared or subscribed) is kept per JetStream
  context, so the ``Bus`` can re-create them after a reconnect and readiness can check them.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import time
import weakref
from dataclasses import dataclass
from typing import Awaitable, Callable

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from router import errors
from router.bus import backoff

__all__ = ["Consumer", "Subscription", "Start", "declare", "ensure", "exists", "fetch", "needed",
           "process_started", "subscribe", "subscriptions", "unsubscribe", "work"]

log = logging.getLogger(__name__)

FETCH_TIMEOUT = 1.0
RETRY_BASE = 0.2
RETRY_CAP = 5.0
# JSConsumerNotFoundErr and JSStreamNotFoundErr.
_CONSUMER_NOT_FOUND = 10014
_STREAM_NOT_FOUND = 10059

Start = str | datetime.datetime
"""``"new"``, ``"all"``, ``"next"`` or an aware time: where a consumer that does not exist yet starts.
``"next"`` is JetStream's own ``DeliverPolicy.NEW``: the first message stored after the server
created the consumer, by the server's clock (a new subscription's start)."""

_declared: "weakref.WeakKeyDictionary[JetStreamContext, dict[tuple[str, str], Start]]" = weakref.WeakKeyDictionary()
_subscribed: "weakref.WeakKeyDictionary[JetStreamContext, dict[tuple[str, str], Subscription]]" = \
    weakref.WeakKeyDictionary()


@dataclass(frozen=True, slots=True)
class Consumer:
    stream: str
    durable: str
    subject: str
    ack_wait: float
    max_ack_pending: int

    @property
    def label(self) -> str:
        return f"consumer {self.durable} on stream {self.stream}"


class Subscription:
    """A pull subscription that knows its consumer, so that a lost consumer can be re-created."""

    def __init__(self, js: JetStreamContext, consumer: Consumer, pull) -> None:
        self.js = js
        self.consumer = consumer
        self.pull = pull
        self.seen = time.time()
        """When the consumer was last known to exist (it was created, or a fetch was answered)."""
        self.failures = 0
        self.backoff = backoff.Backoff(RETRY_BASE, RETRY_CAP)

    def __getattr__(self, name: str):
        """Everything else is nats-py's ``PullSubscription`` (``bench/route.py`` fetches directly)."""
        if name == "pull":
            raise AttributeError(name)
        return getattr(self.pull, name)


def _process_start_time() -> float:
    """When this process began, from the kernel where it says so (Linux), else now.

    ``router.start: new`` means "events stored since this process started": an event accepted by
    this process's own edge (or by anyone once the process exists) is never skipped because the
    consumer was created a moment later.
    """
    try:
        with open(f"/proc/{os.getpid()}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        ticks = int(fields[19])  # field 22 of proc_pid_stat(5); the first two precede the ")"
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
        return time.time() - max(age, 0.0)
    except (OSError, ValueError, IndexError, AttributeError):
        return time.time()


_STARTED = _process_start_time()


def process_started() -> datetime.datetime:
    return datetime.datetime.fromtimestamp(_STARTED, datetime.timezone.utc)


def declare(js: JetStreamContext, stream: str, durable: str, start: Start = "all") -> None:
    """This process needs ``durable`` on ``stream``; if it must be created, it starts at ``start``."""
    _declared.setdefault(js, {})[(stream, durable)] = start


def needed(js: JetStreamContext) -> list[tuple[str, str]]:
    """(stream, durable) of every consumer this process declared or subscribed to."""
    return sorted({*_declared.get(js, {}), *_subscribed.get(js, {})})


def subscriptions(js: JetStreamContext) -> list[Subscription]:
    return list(_subscribed.get(js, {}).values())


async def exists(js: JetStreamContext, stream: str, durable: str) -> bool:
    try:
        await js.consumer_info(stream, durable)
    except nats.js.errors.NotFoundError:
        return False
    return True


def _where(start: Start) -> tuple[dict, str]:
    if start == "all":
        return {"deliver_policy": api.DeliverPolicy.ALL}, "the first stored message"
    if start == "next":
        return {"deliver_policy": api.DeliverPolicy.NEW}, "the next stored message"
    when = process_started() if start == "new" else start
    shown = when.astimezone(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {"deliver_policy": api.DeliverPolicy.BY_START_TIME, "opt_start_time": when}, shown


async def _create(js: JetStreamContext, consumer: Consumer, start: Start, why: str, verb: str = "created") -> bool:
    """Add the consumer; ``False`` if another process created it first (theirs is kept)."""
    policy, where = _where(start)
    config = api.ConsumerConfig(durable_name=consumer.durable, name=consumer.durable,
                                ack_policy=api.AckPolicy.EXPLICIT, ack_wait=consumer.ack_wait,
                                max_ack_pending=consumer.max_ack_pending, filter_subject=consumer.subject,
                                **policy)
    try:
        await js.add_consumer(consumer.stream, config)
    except nats.js.errors.APIError:
        if await exists(js, consumer.stream, consumer.durable):
            return False
        raise
    log.info("%s %s starting at %s%s", verb, consumer.label, where, f" ({why})" if why else "")
    return True


async def subscribe(js: JetStreamContext, *, subject: str, stream: str, durable: str, ack_wait: float,
                    max_ack_pending: int, start: Start | None = None) -> Subscription:
    """Pull from ``durable``, creating it (at ``start``, else what was declared, else ``all``) if absent.

    ``errors.BusUnavailable`` if the stream does not exist (the caller is restarted once it does).
    """
    consumer = Consumer(stream, durable, subject, ack_wait, max_ack_pending)
    declared = _declared.get(js, {}).get((stream, durable))
    start = start or declared or "all"
    why = ""
    if start is declared:
        why = {"new": "router.start: new, when this process started", "all": "router.start: all"}.get(
            start, "router.start")
    try:
        if not await exists(js, stream, durable):
            await _create(js, consumer, start, why)
        pull = await js.pull_subscribe_bind(durable=durable, stream=stream)
    except nats.js.errors.NotFoundError as exc:
        raise errors.BusUnavailable(f"cannot subscribe to {consumer.label}: the stream does not exist") from exc
    subscription = Subscription(js, consumer, pull)
    _subscribed.setdefault(js, {})[(stream, durable)] = subscription
    return subscription


async def ensure(subscription: Subscription) -> bool:
    """Re-create a lost consumer; ``True`` if it was missing. Raises what NATS raises."""
    consumer, js = subscription.consumer, subscription.js
    if await exists(js, consumer.stream, consumer.durable):
        return False
    if _subscribed.get(js, {}).get((consumer.stream, consumer.durable)) is not subscription:
        return False  # unsubscribed meanwhile (a deleted subscription's consumer): not ours to bring back
    info = await js.stream_info(consumer.stream)  # NotFoundError: the stream must come back first
    if info.config.retention == api.RetentionPolicy.WORK_QUEUE:
        start: Start = "all"
        why = "a work queue: everything in it is pending"
    else:
        since = subscription.seen - consumer.ack_wait  # handed out but maybe not yet acknowledged
        start = datetime.datetime.fromtimestamp(since, datetime.timezone.utc)
        why = "ack_wait before it was last seen working"
    return await _create(js, consumer, start, why, verb="re-created lost")


async def fetch(subscription: Subscription, batch: int, what: str) -> list[Msg]:
    """Up to ``batch`` messages; none when nothing arrived in time or the server could not answer.

    A consumer found gone is re-created; while fetching fails, the pauses grow (``backoff``) and the
    log says so once when it starts and once when it is over.
    """
    try:
        messages = await subscription.pull.fetch(batch, timeout=FETCH_TIMEOUT)
    except (asyncio.TimeoutError, nats.errors.TimeoutError):
        # Python 3.11's wait_for turns a cancellation that races its timeout into TimeoutError
        # (fixed in 3.12): a loop that retries on timeouts would then never stop.
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise asyncio.CancelledError from None
        if subscription.failures:  # an answered fetch (nothing to deliver) is a working consumer
            _recovered(subscription, what)
        subscription.seen = time.time()
        return []
    except nats.errors.ConnectionClosedError:
        # The client is gone for good (the Bus replaces it): the supervised part that owns this
        # subscription must restart and subscribe on the new client, not fetch from a dead one.
        raise
    except (nats.errors.Error, nats.js.errors.Error) as exc:
        await _failed(subscription, what, exc)
        return []
    if subscription.failures:
        _recovered(subscription, what)
    subscription.seen = time.time()
    return messages


async def _failed(subscription: Subscription, what: str, exc: Exception) -> None:
    subscription.failures += 1
    reason = f"{exc.__class__.__name__}: {exc}".rstrip(": ")
    if isinstance(exc, nats.js.errors.ServiceUnavailableError):  # no consumer (or stream) answered
        try:
            if await ensure(subscription):  # its log line says what happened
                subscription.failures = 0
                subscription.backoff.reset()
                return
            reason = "JetStream did not answer"
        except nats.js.errors.NotFoundError:
            reason = f"stream {subscription.consumer.stream} does not exist"
        except (nats.errors.Error, nats.js.errors.Error, asyncio.TimeoutError) as again:
            reason = f"{again.__class__.__name__} while checking {subscription.consumer.label}"
    pause = subscription.backoff.next()
    if subscription.failures == 1:
        log.warning("fetching %s from %s failed (%s); retrying", what, subscription.consumer.label, reason)
    else:
        log.debug("fetching %s failed again (%s); retrying in %.1fs", what, reason, pause)
    await asyncio.sleep(pause)


def _recovered(subscription: Subscription, what: str) -> None:
    log.info("fetching %s works again after %d failed attempt(s)", what, subscription.failures)
    subscription.failures = 0
    subscription.backoff.reset()


async def work(subscription: Subscription, limit: int, what: str, handle: Callable[[Msg], Awaitable[None]],
               active: set[asyncio.Task]) -> None:
    """Forever: keep up to ``limit`` ``handle(msg)`` tasks running, fetching only what there is room
    for; on the way out (cancelled), cancel them and wait for all. ``active`` holds the tasks."""
    try:
        while True:
            if len(active) >= limit:
                await asyncio.wait(active, return_when=asyncio.FIRST_COMPLETED)
                continue
            for msg in await fetch(subscription, limit - len(active), what):
                task = asyncio.create_task(handle(msg))
                active.add(task)
                task.add_done_callback(active.discard)
    finally:
        for task in list(active):
            task.cancel()
        await asyncio.gather(*active, return_exceptions=True)


async def unsubscribe(subscription: Subscription) -> None:
    """Stop pulling; the durable consumer stays for the other routers."""
    consumer = subscription.consumer
    if _subscribed.get(subscription.js, {}).get((consumer.stream, consumer.durable)) is subscription:
        del _subscribed[subscription.js][(consumer.stream, consumer.durable)]
    try:
        await subscription.pull.unsubscribe()
    except (nats.errors.Error, nats.js.errors.Error, asyncio.TimeoutError):
        pass
