"""The JetStream bus: connection, streams, and durable publishing.

The contract this module keeps for the HTTP edge: ``publish`` returns only after JetStream has
acknowledged storage, and raises ``errors.BusUnavailable`` otherwise, so a sender never gets a 2xx
for an event that is not stored. Every publish carries ``Nats-Msg-Id`` derived from the event's
(source, id), so a redelivered webhook or a retried publish is dropped by the server's duplicate
window instead of becoming a second event.

A NATS server that comes back with an empty store must not leave the router connected but deaf:
:meth:`Bus.run` re-creates streams, KV buckets and durable consumers after every reconnect and when
:meth:`Bus.missing` finds one gone, and replaces a client nats-py closed for good (after an -ERR);
no failed connection attempt goes unlogged. Messages are checked whole before sending
(``publishing``), so no single one can make the server drop the connection.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import time

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext, api

from router import errors
from router.bus import backoff, consumers, kv, publishing
from router.bus.publishing import Published, msg_id, subject_token  # noqa: F401 (the bus's surface)
from router.bus.streams import ensure_streams, stream_configs  # noqa: F401 (the bus's surface)
from router.config.settings import BusSettings, NatsSettings
from router.model import events, tracecontext
from router.telemetry import metrics

log = logging.getLogger(__name__)

RETRY_BASE = 0.2
RETRY_CAP = 10.0
"""Connecting, reconnecting and setting up JetStream wait ``backoff.delay(n, RETRY_BASE, RETRY_CAP)``."""
READY_CACHE = 1.0
"""Seconds a readiness check is reused: probes are frequent, and each check asks the server a dozen things."""
STUCK_AFTER = 60.0
"""Seconds a closed client may go unreplaced (a supervisor restarting :meth:`run`) before ``/healthz`` fails."""
RECHECK = 30.0
"""Without readiness probes, how often :meth:`Bus.run` looks for lost pieces itself."""


def connect_options(settings: NatsSettings, url: str) -> dict:
    options: dict = {
        "servers": [u.strip() for u in url.split(",") if u.strip()],
        "name": "trigger-router",
        "connect_timeout": settings.connect_timeout,
        "allow_reconnect": True,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 1,
        "ping_interval": 10,
        "max_outstanding_pings": 3,
        "drain_timeout": 5,
    }
    if settings.user:
        options["user"] = settings.user
    if settings.password:
        options["password"] = settings.password.get_secret_value()
    if settings.token:
        options["token"] = settings.token.get_secret_value()
    if settings.credentials_file:
        if not settings.credentials_file.is_file():
            raise errors.ConfigError(f"{settings.credentials_file} is not a file", path="nats.credentials_file")
        options["user_credentials"] = str(settings.credentials_file)
    tls = settings.tls
    if tls.ca_file or tls.cert_file or url.startswith("tls://"):
        try:
            context = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
            if tls.cert_file:
                context.load_cert_chain(str(tls.cert_file), str(tls.key_file) if tls.key_file else None)
        except (OSError, ssl.SSLError) as exc:  # a configuration error: retrying cannot help
            raise errors.ConfigError(f"cannot load TLS files: {exc}", path="nats.tls") from exc
        options["tls"] = context
    return options


class Complaints:
    """A failure repeated every second is said once, then at most every ``every`` seconds with a count."""

    def __init__(self, every: float = 15.0) -> None:
        self.every, self.count, self._said = every, 0, 0.0

    def failed(self, message: str, *args: object) -> None:
        self.count += 1
        now = time.monotonic()
        if self.count == 1 or now - self._said >= self.every:
            self._said = now
            log.warning(message + (f" ({self.count} failed attempts so far)" if self.count > 1 else ""), *args)

    def over(self) -> int:
        """The failures since the last success; starts counting anew."""
        count, self.count = self.count, 0
        return count


class _Unreachable(Exception):
    """Raised from the error callback to end one connection attempt (nats-py would retry quietly)."""


class Bus:
    """One NATS connection with its JetStream context, kept alive (by :meth:`run`) for the process."""

    def __init__(self, settings: NatsSettings, bus: BusSettings,
                 extra_streams: list[api.StreamConfig] = ()) -> None:
        self.settings = settings
        self.config = bus
        self.extra_streams = list(extra_streams)
        self.nc: Client | None = None
        self.js: JetStreamContext | None = None
        self.url = ""
        self._streams_ready = asyncio.Event()
        self._damaged = asyncio.Event()
        self._connector: asyncio.Task | None = None
        self._closing = False
        self._unreachable = Complaints()
        self._reconnect_backoff = backoff.Backoff(RETRY_BASE, RETRY_CAP)
        self._expected: dict[tuple[str, str], consumers.Start] = {}
        self._checked: tuple[float, list[str]] = (-READY_CACHE, [])
        self._checking = asyncio.Lock()
        self._stopped_at: float | None = 0.0  # when run() last ended; None while it runs
        self.replaced = 0  # closed clients replaced: each one an outage of this process's bus
        self._acks: publishing.Acks | None = None

    def expect_consumer(self, stream: str, durable: str, start: consumers.Start = "all") -> None:
        """Readiness waits for this consumer; created by its first subscriber, starting at ``start``."""
        self._expected[(stream, durable)] = start
        if self.js is not None:
            consumers.declare(self.js, stream, durable, start)

    async def start(self, url: str) -> None:
        """:meth:`run` in the background, for callers without a supervisor (``serve`` has one)."""
        self._connector = asyncio.create_task(self.run(url), name="nats-connect")
        self._connector.add_done_callback(_report_end)

    async def wait_ready(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._streams_ready.wait(), timeout)

    async def run(self, url: str) -> None:
        """Connect, then keep what this process needs on the server, for the life of the process."""
        self.url = url
        self._stopped_at = None
        try:
            await self._keep(url)
        finally:
            self._stopped_at = time.monotonic()

    async def _keep(self, url: str) -> None:
        retry = backoff.Backoff(RETRY_BASE, RETRY_CAP)
        while True:
            if self.nc is None or self.nc.is_closed:  # nats-py gives up a client for good after an -ERR
                await self._connect(url)
            self._damaged.clear()  # before repairing: damage found meanwhile means one more round
            try:
                await self._repair()
            except (asyncio.TimeoutError, nats.errors.Error, nats.js.errors.Error) as exc:
                delay = retry.next()
                log.warning("cannot set up JetStream (%s); retrying in %.1fs", _reason(exc), delay)
                await asyncio.sleep(delay)
                self._damaged.set()
            else:
                retry.reset()
                self._streams_ready.set()
            try:
                async with asyncio.timeout(RECHECK):  # unlike 3.11's wait_for, never swallows a cancel
                    await self._damaged.wait()
            except TimeoutError:
                await self.missing()  # sets _damaged if something can be re-created

    async def _connect(self, url: str) -> None:
        servers = connect_options(self.settings, url)["servers"]
        retry = backoff.Backoff(RETRY_BASE, RETRY_CAP)
        while True:
            nc, failures = Client(), []

            async def on_error(exc: Exception) -> None:
                if nc.is_connected or self.nc is nc:
                    await self._on_error(exc)
                    return
                failures.append(exc)
                if len(failures) >= len(servers):  # every server refused once: this attempt failed
                    raise _Unreachable(exc)

            async def on_closed() -> None:
                if self.nc is nc and not self._closing:
                    self._lost(nc)

            try:
                await nc.connect(**connect_options(self.settings, url), error_cb=on_error, closed_cb=on_closed,
                                 reconnected_cb=self._on_reconnected, disconnected_cb=self._on_disconnected,
                                 reconnect_to_server_handler=self._next_server)
                break
            except (_Unreachable, OSError, asyncio.TimeoutError, nats.errors.Error) as exc:
                cause = exc.args[0] if isinstance(exc, _Unreachable) else exc
                self._unreachable.failed("cannot reach NATS at %s: %s", shown(url), _reason(cause))
                await nc.close()
                await asyncio.sleep(retry.next())
        self.nc, self.js = nc, nc.jetstream()
        for (stream, durable), start in self._expected.items():
            consumers.declare(self.js, stream, durable, start)
        failed = self._unreachable.over()
        log.info("connected to NATS %s%s", shown(nc.connected_url.geturl()) if nc.connected_url else shown(url),
                 f" after {failed} failed attempt(s)" if failed else "")

    def _lost(self, nc: Client) -> None:
        """The client was closed under us (an -ERR the server disconnects for): :meth:`run` replaces it."""
        self.replaced += 1
        self._streams_ready.clear()
        log.warning("the NATS client was closed (%s); connecting a new one", _reason(nc.last_error or Exception()))
        self._damaged.set()

    def unrecoverable(self) -> str | None:
        """Why this process cannot get back onto NATS by itself (``/healthz`` fails): a closed client
        that no :meth:`run` has been replacing for ``STUCK_AFTER`` seconds; ``None`` otherwise."""
        stuck = (not self._closing and self.nc is not None and self.nc.is_closed and self._stopped_at is not None
                 and time.monotonic() - self._stopped_at >= STUCK_AFTER)
        return f"the NATS client is closed and has not been replaced for {STUCK_AFTER:.0f}s" if stuck else None

    def _next_server(self, servers: list, info: dict) -> tuple:
        """nats-py's reconnect hook: the least tried server, after the one backoff formula's delay."""
        return min(servers, key=lambda server: server.reconnects), self._reconnect_backoff.next()

    async def _repair(self) -> None:
        """Create every stream, KV bucket and durable consumer this process needs that is missing."""
        created = await ensure_streams(self.js, self.config, self.extra_streams)
        created += [f"KV bucket {name}" for name in await kv.ensure_buckets(self.js)]
        for subscription in consumers.subscriptions(self.js):
            if await consumers.ensure(subscription):
                created.append(subscription.consumer.label)
        if created and self._streams_ready.is_set():
            log.warning("the NATS server had lost %s; re-created", ", ".join(created))
        self._checked = (-READY_CACHE, [])

    async def _on_reconnected(self) -> None:
        failed = self._unreachable.over()
        log.info("reconnected to NATS%s", f" after {failed} failed attempt(s)" if failed else "")
        self._reconnect_backoff.reset()
        # A server that lost its store (or a new one behind the URL) needs everything again.
        self._damaged.set()

    async def _on_disconnected(self) -> None:
        if not self._closing and self.nc is not None:  # not a failed first attempt's clean-up
            log.warning("disconnected from NATS; ingest answers 503 until it is back")

    async def _on_error(self, exc: Exception) -> None:
        if self.nc is not None and self.nc.is_reconnecting and not self._closing:
            self._unreachable.failed("cannot reach NATS at %s: %s", shown(self.url), _reason(exc))
        else:
            log.debug("NATS client error: %s", exc)

    @property
    def connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    async def missing(self) -> list[str]:
        """What this process needs and the server lacks (checked at most every ``READY_CACHE`` s);
        a missing piece wakes :meth:`run` to create it again."""
        if not self.connected or self.js is None:
            return ["NATS connection"]
        async with self._checking:
            checked_at, gone = self._checked
            if time.monotonic() - checked_at < READY_CACHE:
                return gone
            try:
                gone, repairable = await self._find_missing()
            except (asyncio.TimeoutError, nats.errors.Error, nats.js.errors.Error) as exc:
                gone, repairable = [f"JetStream ({exc.__class__.__name__})"], False
            self._checked = (time.monotonic(), gone)
        if repairable:
            self._damaged.set()
        return gone

    async def _find_missing(self) -> tuple[list[str], bool]:
        """What is missing, and whether :meth:`_repair` can create some of it (not an expected
        consumer no one has subscribed to yet: its subscriber creates it)."""
        gone = []
        for config in [*stream_configs(self.config), *self.extra_streams]:
            try:
                await self.js.stream_info(config.name)
            except nats.js.errors.NotFoundError:
                gone.append(f"stream {config.name}")
        gone += [f"KV bucket {name}" for name in await kv.missing_buckets(self.js)]
        subscribed = {(s.consumer.stream, s.consumer.durable) for s in consumers.subscriptions(self.js)}
        repairable = bool(gone)
        for stream, durable in sorted({*consumers.needed(self.js), *self._expected}):
            if not await consumers.exists(self.js, stream, durable):
                gone.append(f"consumer {durable} on stream {stream}")
                repairable = repairable or (stream, durable) in subscribed
        if not gone and not self._streams_ready.is_set():
            gone.append("JetStream set-up (in progress)")
        return gone, repairable

    @property
    def max_payload(self) -> int:
        return self.nc.max_payload if self.nc is not None else 0

    def subject_for(self, event: events.CloudEvent) -> str:
        return f"{self.config.events_subject}.{subject_token(event.type)}"

    def encode(self, event: events.CloudEvent, subject: str | None = None,
               headers: dict[str, str] | None = None) -> publishing.Outgoing:
        """``publishing.encode`` for this bus: every bound checked, nothing sent. An event without
        a valid ``traceparent`` starts a new trace here (``model.tracecontext``)."""
        return publishing.encode(tracecontext.ensure(event), subject or self.subject_for(event), self.max_payload,
                                 from_type=subject is None, headers=headers)

    async def publish(self, event: events.CloudEvent, subject: str | None = None,
                      headers: dict[str, str] | None = None) -> Published:
        published = await self.send(self.encode(event, subject, headers))  # a bad event is refused even while down
        return metrics.published_all([event], [published])[0]

    def encode_raw(self, subject: str, payload: bytes, msg_id: str,
                   headers: dict[str, str] | None = None) -> publishing.Outgoing:
        """``publishing.encode_raw`` for this bus: a non-CloudEvent record, checked, not sent."""
        return publishing.encode_raw(subject, payload, msg_id, headers, self.max_payload)

    async def publish_raw(self, subject: str, payload: bytes, msg_id: str,
                          headers: dict[str, str] | None = None) -> Published:
        """Publish a non-CloudEvent record (a run, a dead letter) with an explicit dedupe id."""
        return await self.send(self.encode_raw(subject, payload, msg_id, headers))

    async def send(self, message: publishing.Outgoing) -> Published:
        """Send an encoded message; returns once JetStream acknowledged storage."""
        return await self._pipeline().send(message, self.settings.publish_timeout)

    def _pipeline(self) -> publishing.Acks:
        """The ack pipeline of the current connection (a replaced client gets a new one)."""
        if not self.connected or self.nc is None:
            raise errors.BusUnavailable("not connected to NATS JetStream")
        if self._acks is None or self._acks.nc is not self.nc:
            self._acks = publishing.Acks(self.nc)
        return self._acks

    async def publish_all(self, batch: list[events.CloudEvent]) -> list[Published]:
        """Every event encoded and checked before any is sent (a batch is refused whole), then sent
        concurrently; succeeds only when every event is stored (retries are deduplicated)."""
        return metrics.published_all(batch, await self.send_all([self.encode(event) for event in batch]))

    async def send_all(self, messages: list[publishing.Outgoing]) -> list[Published]:
        """Every message sent, then every ack awaited; the first failure is raised."""
        results = await self.send_many(messages)
        for result in results:
            if isinstance(result, Exception):
                raise result
        return results  # type: ignore[return-value]

    async def send_many(self, messages: list[publishing.Outgoing]) -> list[Published | Exception]:
        """Every message sent, then every ack awaited: per message its ``Published`` or the error."""
        return await self._pipeline().send_all(messages, self.settings.publish_timeout)

    async def close(self) -> None:
        self._closing = True
        if self._connector:
            self._connector.cancel()
            # Bounded: on Python 3.11 a cancel racing a request's timeout can be swallowed as a
            # TimeoutError by a retry loop, and shutdown must not hang on it.
            await asyncio.wait({self._connector}, timeout=5)
        if self.nc and not self.nc.is_closed:
            try:
                await self.nc.drain()
            except (nats.errors.Error, asyncio.TimeoutError):
                await self.nc.close()


def shown(url: str) -> str:
    """``url`` without user names, passwords or tokens, for log lines."""
    return ",".join(re.sub(r"//[^@/]*@", "//", part.strip()) for part in url.split(","))


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__


def _report_end(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the NATS connection stopped: %s", _reason(task.exception()), exc_info=task.exception())

