"""One subscription's deliveries: its own durable consumers, its sink, its retries and dead letters.

Each subscription has two durable pull consumers, ``sub-<id>-events`` on ``bus.events_stream`` and
``sub-<id>-outcomes`` on ``bus.outcomes_stream``, shared by every router process that delivers
(each event goes to one of them). Durable consumers are what make delivery at-least-once: an event
is acknowledged only after the sink answered 2xx, so a sink that is down, or a router that is
killed, leaves it on the server, and it is delivered when the sink is back.

- **Start.** The API creates both consumers before it answers ``201``, with ``DeliverPolicy.NEW``:
  every message stored from then on (by the server's clock) is the subscription's, none from
  before. A consumer that exists continues where it was, across restarts and updates; one lost
  before any process bound it is re-created from the subscription's creation time.
- **The request.** CloudEvents HTTP binary mode (``model.bindings.http``): ``ce-id`` is the event's
  own id (stable across redeliveries, so a sink can drop repeats), the data is the body, plus the
  subscription's ``protocolsettings.headers``; method ``POST`` (or ``PUT``), no redirects followed,
  ``subscriptions.request_timeout`` per attempt.
- **Answers.** 2xx: delivered (acknowledged). No answer, a timeout, 5xx, 408, 409, 425 or 429:
  ``errors.SinkUnavailable``, retried with nak-and-delay, the delay ``backoff.delay(attempt,
  subscriptions.backoff, subscriptions.max_backoff)``, or the ``Retry-After`` of a 429 or 503 (read by
  ``plugins.ratelimits``, at most an hour). Any other answer (400, 401, 403, 404, 410, 413, 415, 422, a redirect) is
  ``errors.SinkRefused``: repeating the same request cannot change it, so it is dead-lettered at once.
- **Dead letters.** An event not delivered after ``subscriptions.max_attempts`` attempts (redeliveries
  after a killed router count too), or refused, is stored on the dead-letter stream under
  ``<bus.deadletter_subject>.subscriptions.<id>`` with the reason, then terminated.
- **Isolation.** A retry is a nak with a delay, not a sleep: nothing waits in the router. At most
  ``subscriptions.max_in_flight`` events per consumer are handed out at once (its ``max_ack_pending``,
  delayed retries included), so a slow or dead sink holds back only its own subscription, and
  events behind the in-flight ones wait on the server without using up attempts.

Events that do not match the subscription's filters are acknowledged without a request. Events are
not delivered in order: retries overtake nothing, and up to ``max_in_flight`` requests run at once.
"""

from __future__ import annotations

import asyncio
import datetime
import logging

import aiohttp
import nats.errors
import nats.js.errors
from nats.aio.msg import Msg

from router import errors
from router.bus import backoff, consumers
from router.bus.connection import Bus
from router.config.settings import Settings
from router.engine import deadletters
from router.model import events
from router.model.bindings import http as http_binding
from router.model.bindings import nats as nats_binding
from router.plugins import ratelimits
from router.subscriptions import filtering
from router.subscriptions.store import Stored
from router.telemetry import metrics

__all__ = ["Deliverer", "create_consumers", "delete_consumers", "durables", "send", "verdict"]

log = logging.getLogger(__name__)

PERMANENT = frozenset({400, 401, 403, 404, 405, 406, 410, 411, 413, 414, 415, 422})
UNLIMITED = 1_000_000
"""Stored subscriptions were checked against the limits when written; a lowered limit does not stop them."""


def durables(subscription_id: str) -> dict[str, str]:
    """The consumers of a subscription, by stream role."""
    return {"events": f"sub-{subscription_id}-events", "outcomes": f"sub-{subscription_id}-outcomes"}


async def send(session: aiohttp.ClientSession, stored: Stored, event: events.CloudEvent, timeout: float) -> int:
    """One attempt; the status of a 2xx, else ``SinkUnavailable`` or ``SinkRefused`` saying why."""
    subscription = stored.subscription
    binding, body = http_binding.to_binary(event)
    headers = {**subscription.protocolsettings.headers, **binding}
    try:
        async with session.request(subscription.protocolsettings.method, subscription.sink, data=body,
                                   headers=headers, allow_redirects=False,
                                   timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            status = response.status
            asked = ratelimits.retry_after(response.headers.get("Retry-After")) if status in (429, 503) else None
            response.release()
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        raise errors.SinkUnavailable(f"no answer from the sink: {exc.__class__.__name__}") from exc
    problem = verdict(status, asked)
    if problem is not None:
        raise problem
    return status


def verdict(status: int, asked: float | None = None) -> errors.DispatchError | None:
    """What an answer means: ``None`` for delivered, else the error to raise (``asked``: its Retry-After)."""
    if 200 <= status < 300:
        return None
    if status in PERMANENT or 300 <= status < 400:
        return errors.SinkRefused(f"the sink answered {status}")
    return errors.SinkUnavailable(f"the sink answered {status}", delay=asked)


async def delete_consumers(bus: Bus, settings: Settings, subscription_id: str) -> None:
    """Remove the subscription's consumers (nothing if they are gone); ``BusUnavailable`` if NATS cannot answer."""
    streams = {"events": settings.bus.events_stream, "outcomes": settings.bus.outcomes_stream}
    for role, durable in durables(subscription_id).items():
        try:
            await bus.js.delete_consumer(streams[role], durable)
        except nats.js.errors.NotFoundError:
            pass
        except (nats.errors.Error, nats.js.errors.Error, asyncio.TimeoutError) as exc:
            raise errors.BusUnavailable(f"cannot delete consumer {durable}: {exc.__class__.__name__}") from exc


def _streams(settings: Settings) -> dict[str, tuple[str, str]]:
    """(stream, subject filter) by role."""
    return {"events": (settings.bus.events_stream, f"{settings.bus.events_subject}.>"),
            "outcomes": (settings.bus.outcomes_stream, f"{settings.bus.outcomes_subject}.>")}


def _ack_wait(settings: Settings) -> float:
    return 2 * settings.subscriptions.request_timeout + 5


async def create_consumers(bus: Bus, settings: Settings, subscription_id: str) -> None:
    """Create the consumers of a new subscription, starting at the next stored message (before the
    ``201``: what is stored from then on is the subscription's, by the server's clock). Raises
    ``BusUnavailable`` if NATS cannot answer."""
    if not bus.connected or bus.js is None:
        raise errors.BusUnavailable("not connected to NATS JetStream")
    try:
        for role, durable in durables(subscription_id).items():
            stream, subject = _streams(settings)[role]
            subscription = await consumers.subscribe(bus.js, subject=subject, stream=stream, durable=durable,
                                                     start="next", ack_wait=_ack_wait(settings),
                                                     max_ack_pending=settings.subscriptions.max_in_flight)
            await consumers.unsubscribe(subscription)
    except (nats.errors.Error, nats.js.errors.Error, asyncio.TimeoutError) as exc:
        raise errors.BusUnavailable(f"cannot create the subscription's consumers: {exc.__class__.__name__}") from exc


class Deliverer:
    """Delivers one subscription (the part ``subscription/<id>``) from both streams."""

    def __init__(self, bus: Bus, settings: Settings, stored: Stored) -> None:
        self.bus = bus
        self.settings = settings
        self.config = settings.subscriptions
        self.stored = stored
        self.id = stored.subscription.id
        self.matcher: filtering.Compiled | None = None

    async def run(self) -> None:
        # Compiled here, not when the manager starts the part: a stored document that no longer
        # compiles (written by another version) fails this part, visibly, and no other.
        self.matcher = self.stored.subscription.matcher(UNLIMITED)
        await self.bus.wait_ready()
        limit = self.config.max_in_flight
        connector = aiohttp.TCPConnector(limit=2 * limit)
        async with aiohttp.ClientSession(connector=connector) as session:
            pumps = [asyncio.create_task(self._pump(session, *_streams(self.settings)[role], durable),
                                         name=f"subscription/{self.id}/{role}")
                     for role, durable in durables(self.id).items()]
            try:  # one failing stream restarts the part (both resubscribe), with its own error shown
                done, _ = await asyncio.wait(pumps, return_when=asyncio.FIRST_EXCEPTION)
                for pump in done:
                    pump.result()
            finally:
                for pump in pumps:
                    pump.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)

    async def _pump(self, session: aiohttp.ClientSession, stream: str, subject: str, durable: str) -> None:
        # The API created the consumers; only if they were lost before any process bound them does
        # this create them, from the subscription's creation time.
        start = datetime.datetime.fromtimestamp(self.stored.created, datetime.timezone.utc)
        limit = self.config.max_in_flight
        subscription = await consumers.subscribe(self.bus.js, subject=subject, stream=stream, durable=durable,
                                                 start=start, max_ack_pending=limit, ack_wait=_ack_wait(self.settings))
        what = f"events for subscription {self.id}"
        in_flight: dict[asyncio.Task, Msg] = {}
        try:
            while True:
                if len(in_flight) >= limit:
                    await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                    continue
                for msg in await consumers.fetch(subscription, limit - len(in_flight), what):
                    task = asyncio.create_task(self._deliver(session, msg))
                    in_flight[task] = msg
                    task.add_done_callback(lambda done: in_flight.pop(done, None))
        finally:
            await self._hand_back(in_flight)
            await consumers.unsubscribe(subscription)

    async def _hand_back(self, in_flight: dict[asyncio.Task, Msg]) -> None:
        """Stopping (an update, a shutdown): what was being delivered goes back to the server at once
        (a nak without delay, one more attempt), not after ack_wait. A nak after a delivery's own
        ack is ignored by the server."""
        unsettled = dict(in_flight)
        for task in unsettled:
            task.cancel()
        await asyncio.gather(*unsettled, return_exceptions=True)
        naks = [msg.nak() for task, msg in unsettled.items() if task.cancelled()]
        if naks:
            try:
                async with asyncio.timeout(2.0):
                    await asyncio.gather(*naks, return_exceptions=True)
            except TimeoutError:
                pass  # redelivered after ack_wait instead

    async def _deliver(self, session: aiohttp.ClientSession, msg: Msg) -> None:
        """Deliver, retry later or dead-letter one message; settles it, never raises."""
        attempt = msg.metadata.num_delivered
        try:
            try:
                event = nats_binding.from_message(msg.headers, msg.data)
            except errors.BadRequest:
                await msg.ack()  # not a CloudEvent: the event router dead-letters those, once
                return
            if self.matcher is None or not self.matcher.matches(event):
                await msg.ack()
                return
            if attempt > self.config.max_attempts:  # the last attempt's router died before dead-lettering
                await self._dead(msg, "the last attempt was interrupted", attempt - 1)
                return
            try:
                await send(session, self.stored, event, self.config.request_timeout)
            except errors.SinkRefused as exc:
                await self._dead(msg, str(exc), attempt)
                return
            except errors.SinkUnavailable as exc:
                if attempt >= self.config.max_attempts:
                    await self._dead(msg, f"{exc} (attempt {attempt} of {self.config.max_attempts})", attempt)
                    return
                delay = exc.delay if exc.delay is not None else backoff.delay(
                    attempt, self.config.backoff, self.config.max_backoff)
                if attempt == 1:
                    log.info("subscription %s: event %s not delivered (%s); retrying", self.id, event.id, exc)
                metrics.delivered("retry")
                await msg.nak(delay=delay)
                return
            metrics.delivered("ok")
            await msg.ack()
        except asyncio.CancelledError:
            raise
        except (nats.errors.Error, nats.js.errors.Error, asyncio.TimeoutError) as exc:
            # Not settled: JetStream redelivers after ack_wait, which the sink's dedupe (ce-id) absorbs.
            log.warning("subscription %s: could not settle a message: %s", self.id, exc.__class__.__name__)
        except Exception:
            log.exception("subscription %s: delivering a message failed; it will be redelivered", self.id)
            await _quietly(msg.nak(delay=self.config.max_backoff))

    async def _dead(self, msg: Msg, reason: str, attempts: int) -> None:
        try:
            await deadletters.undelivered(self.bus, self.settings, self.id, msg, reason, attempts)
        except errors.BusUnavailable as exc:
            log.warning("subscription %s: cannot dead-letter yet (%s); retrying", self.id, exc.detail)
            await msg.nak(delay=2.0)
            return
        except errors.IngestError as exc:  # it fitted the stream once; with our headers it does not
            log.error("subscription %s: %s#%d cannot be dead-lettered (%s); dropping it after: %s", self.id,
                      msg.metadata.stream, msg.metadata.sequence.stream, exc.detail, reason)
            await msg.term()
            return
        metrics.delivered("dead-lettered")
        log.warning("subscription %s: dead-lettered %s#%d after %d attempt(s): %s", self.id, msg.metadata.stream,
                    msg.metadata.sequence.stream, attempts, reason)
        await msg.term()


async def _quietly(settling) -> None:
    try:
        await settling
    except (nats.errors.Error, nats.js.errors.Error, asyncio.TimeoutError):
        pass
