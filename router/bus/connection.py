"""The JetStream bus: connection, streams, and durable publishing.

The contract this module keeps for the HTTP edge: ``publish`` returns only after JetStream has
acknowledged storage, and raises ``errors.BusUnavailable`` otherwise, so a sender never gets a 2xx
for an event that is not stored. Every publish carries ``Nats-Msg-Id`` derived from the event's
(source, id), so a redelivered webhook or a retried publish is dropped by the server's duplicate
window instead of becoming a second event.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import re
import ssl
from dataclasses import dataclass

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext, api

from router import errors
from router.config.settings import BusSettings, NatsSettings
from router.model import events
from router.model.bindings import nats as nats_binding

log = logging.getLogger(__name__)

_SUBJECT_UNSAFE = re.compile(r"[^A-Za-z0-9_\-.]")


@dataclass(frozen=True, slots=True)
class Published:
    stream: str
    seq: int
    duplicate: bool


def msg_id(event: events.CloudEvent) -> str:
    """Stable across retries and redeliveries: (source, id) identifies an event (core spec §3.1.1)."""
    digest = hashlib.sha256(f"{event.source}\x00{event.id}".encode()).hexdigest()
    return f"ce-{digest[:40]}"


def subject_token(value: str) -> str:
    tokens = [_SUBJECT_UNSAFE.sub("_", token) for token in value.split(".")]
    return ".".join(token or "_" for token in tokens)


def stream_configs(bus: BusSettings) -> list[api.StreamConfig]:
    def config(name: str, subject: str, description: str) -> api.StreamConfig:
        return api.StreamConfig(
            name=name,
            description=description,
            subjects=[f"{subject}.>"],
            retention=api.RetentionPolicy.LIMITS,
            storage=api.StorageType.FILE,
            max_age=bus.max_age,
            max_bytes=bus.max_bytes,
            duplicate_window=min(bus.duplicate_window, bus.max_age) if bus.max_age else bus.duplicate_window,
            num_replicas=bus.replicas,
        )

    return [
        config(bus.events_stream, bus.events_subject, "trigger-router: ingested CloudEvents"),
        config(bus.outcomes_stream, bus.outcomes_subject, "trigger-router: run outcomes (CDEvents)"),
        config(bus.deadletter_stream, bus.deadletter_subject, "trigger-router: undeliverable events"),
    ]


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
        options["user_credentials"] = str(settings.credentials_file)
    tls = settings.tls
    if tls.ca_file or tls.cert_file or url.startswith("tls://"):
        context = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
        if tls.cert_file:
            context.load_cert_chain(str(tls.cert_file), str(tls.key_file) if tls.key_file else None)
        options["tls"] = context
    return options


class Bus:
    """One NATS connection with its JetStream context, kept alive for the life of the process."""

    def __init__(self, settings: NatsSettings, bus: BusSettings,
                 extra_streams: list[api.StreamConfig] = ()) -> None:
        self.settings = settings
        self.config = bus
        self.extra_streams = list(extra_streams)
        self.nc: Client | None = None
        self.js: JetStreamContext | None = None
        self._streams_ready = asyncio.Event()
        self._connector: asyncio.Task | None = None
        self._closing = False

    async def start(self, url: str) -> None:
        """Connect in the background: the HTTP edge can answer 503 while NATS is not there yet."""
        self._connector = asyncio.create_task(self._connect_forever(url), name="nats-connect")

    async def wait_ready(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._streams_ready.wait(), timeout)

    async def _connect_forever(self, url: str) -> None:
        delay = 0.2
        while True:
            try:
                nc = await nats.connect(
                    **connect_options(self.settings, url),
                    reconnected_cb=self._on_reconnected,
                    disconnected_cb=self._on_disconnected,
                    error_cb=self._on_error,
                )
                break
            except (OSError, asyncio.TimeoutError, nats.errors.Error) as exc:
                log.warning("cannot connect to NATS at %s (%s); retrying in %.1fs", url, exc, delay)
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 10.0)
        self.nc, self.js = nc, nc.jetstream()
        log.info("connected to NATS %s", nc.connected_url.netloc if nc.connected_url else url)
        await self._ensure_streams_with_retry()

    async def _ensure_streams_with_retry(self) -> None:
        delay = 0.2
        while True:
            try:
                await ensure_streams(self.js, self.config, self.extra_streams)
                self._streams_ready.set()
                return
            except (asyncio.TimeoutError, nats.errors.Error, nats.js.errors.Error) as exc:
                log.warning("cannot set up JetStream streams (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 10.0)

    async def _on_reconnected(self) -> None:
        log.info("reconnected to NATS")
        # A server that lost its store (or a new one behind the URL) needs the streams again.
        asyncio.create_task(self._ensure_streams_with_retry())

    async def _on_disconnected(self) -> None:
        if not self._closing:
            log.warning("disconnected from NATS; ingest answers 503 until it is back")

    async def _on_error(self, exc: Exception) -> None:
        log.debug("NATS client error: %s", exc)

    @property
    def connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    async def ready(self) -> tuple[bool, str]:
        if not self.connected or self.js is None:
            return False, "not connected to NATS"
        try:
            for config in stream_configs(self.config):
                await self.js.stream_info(config.name)
        except (asyncio.TimeoutError, nats.errors.Error, nats.js.errors.Error) as exc:
            return False, f"JetStream streams not available: {exc.__class__.__name__}"
        return True, "ok"

    def subject_for(self, event: events.CloudEvent) -> str:
        return f"{self.config.events_subject}.{subject_token(event.type)}"

    async def publish(self, event: events.CloudEvent, subject: str | None = None) -> Published:
        if not self.connected or self.js is None:
            raise errors.BusUnavailable("not connected to NATS JetStream")
        hdrs, payload = nats_binding.to_binary(event)
        hdrs["Nats-Msg-Id"] = msg_id(event)
        try:
            ack = await self.js.publish(
                subject or self.subject_for(event), payload,
                timeout=self.settings.publish_timeout, headers=hdrs,
            )
        except (asyncio.TimeoutError, nats.errors.Error, nats.js.errors.Error) as exc:
            raise errors.BusUnavailable(f"JetStream did not confirm storage: {exc.__class__.__name__}") from exc
        return Published(ack.stream, ack.seq, bool(ack.duplicate))

    async def publish_raw(self, subject: str, payload: bytes, msg_id: str,
                          headers: dict[str, str] | None = None) -> Published:
        """Publish a non-CloudEvent record (a run, a dead letter) with an explicit dedupe id."""
        if not self.connected or self.js is None:
            raise errors.BusUnavailable("not connected to NATS JetStream")
        try:
            ack = await self.js.publish(subject, payload, timeout=self.settings.publish_timeout,
                                        headers={**(headers or {}), "Nats-Msg-Id": msg_id})
        except (asyncio.TimeoutError, nats.errors.Error, nats.js.errors.Error) as exc:
            raise errors.BusUnavailable(f"JetStream did not confirm storage: {exc.__class__.__name__}") from exc
        return Published(ack.stream, ack.seq, bool(ack.duplicate))

    async def publish_all(self, batch: list[events.CloudEvent]) -> list[Published]:
        """Publish concurrently; succeeds only when every event is stored (retries are deduplicated)."""
        results = await asyncio.gather(*(self.publish(e) for e in batch), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return results  # type: ignore[return-value]

    async def close(self) -> None:
        self._closing = True
        if self._connector:
            self._connector.cancel()
        if self.nc and not self.nc.is_closed:
            try:
                await self.nc.drain()
            except (nats.errors.Error, asyncio.TimeoutError):
                await self.nc.close()


async def ensure_streams(js: JetStreamContext, bus: BusSettings,
                         extra: list[api.StreamConfig] = ()) -> None:
    """Create missing streams, update drifted ones; running it twice changes nothing."""
    for config in [*stream_configs(bus), *extra]:
        try:
            info = await js.stream_info(config.name)
        except nats.js.errors.NotFoundError:
            await js.add_stream(config)
            log.info("created stream %s (%s)", config.name, config.subjects[0])
            continue
        current = info.config
        if (current.subjects, current.max_age, current.duplicate_window, current.max_bytes,
                current.num_replicas) != (config.subjects, config.max_age, config.duplicate_window,
                                          config.max_bytes, config.num_replicas):
            await js.update_stream(config)
            log.info("updated stream %s", config.name)

