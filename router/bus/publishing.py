"""What is published, checked whole before anything is sent: subject, headers and payload of each message.

The edge promises all-or-nothing requests: a batch whose third event cannot be stored must not
leave the first two in the stream. So publishing is two steps. :func:`encode` turns an event into
an :class:`Outgoing` message and runs every check of ``router.bus.limits`` (subject, attribute
lengths, header syntax, ``max_payload``); a refusal is a permanent ``errors.IngestError``, before
anything was sent. Only when every message of a request is encoded does ``Bus`` send them. What
can still fail after that (no connection, no storage ack) is ``errors.BusUnavailable``, and a retry
is safe: every message carries a ``Nats-Msg-Id`` derived from the event's (source, id).

Checking headers and subject here also keeps any single message from making nats-server answer
``-ERR`` and close the connection.

Sending is pipelined (:class:`Acks`): each message is published with a reply subject under one
wildcard subscription per connection, and its storage ack is a future resolved by that
subscription. A batch is written in one go and its acks awaited together under one timer, instead
of one request (a task, a timer and a wait) per message as ``JetStreamContext.publish`` does: the
largest single cost of the publish path in the ingest and routing profiles (bench/).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import re
from dataclasses import dataclass

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg

from router import errors
from router.bus import limits
from router.model import events
from router.model.bindings import nats as nats_binding

__all__ = ["Acks", "Outgoing", "Published", "encode", "encode_raw", "msg_id", "subject_token"]

_SUBJECT_UNSAFE = re.compile(r"[^A-Za-z0-9_\-.]")


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message ready to send: every bound has been checked."""

    subject: str
    payload: bytes
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class Published:
    stream: str
    seq: int
    duplicate: bool


def msg_id(event: events.CloudEvent) -> str:
    """Stable across retries and redeliveries: (source, id) identifies an event (core spec §3.1.1)."""
    digest = hashlib.sha256(f"{event.source}\x00{event.id}".encode("utf-8", "surrogatepass")).hexdigest()
    return f"ce-{digest[:40]}"


def subject_token(value: str) -> str:
    tokens = [_SUBJECT_UNSAFE.sub("_", token) for token in value.split(".")]
    return ".".join(token or "_" for token in tokens)


def encode(event: events.CloudEvent, subject: str, max_payload: int, *, from_type: bool = True,
           headers: dict[str, str] | None = None) -> Outgoing:
    """The message for ``event`` on ``subject``; ``IngestError`` naming the limit or attribute if it
    could never be stored. ``from_type``: the subject was built from the event's ``type``;
    ``headers``: NATS headers of the router's own beside the event's (not ``ce-``, so not attributes)."""
    limits.check_subject(subject, "type" if from_type else None)
    limits.check_attributes(event.attributes)
    try:
        binary, payload = nats_binding.to_binary(event)
    except UnicodeEncodeError as exc:  # a lone surrogate ("\ud800") from a JSON string
        raise errors.BadRequest(f"attribute '{_unencodable(event)}' is not valid Unicode",
                                field=_unencodable(event)) from exc
    headers = {**binary, **(headers or {}), "Nats-Msg-Id": msg_id(event)}
    try:
        limits.check_headers(headers)
    except errors.BadRequest as exc:  # name the attribute the sender wrote, not its header
        name = (exc.field or "").lower()
        attribute = "datacontenttype" if name == "content-type" else name.removeprefix("ce-")
        raise errors.BadRequest(exc.detail.replace(f"header {exc.field}", f"attribute '{attribute}'"),
                                field=attribute, limit=exc.limit) from exc
    limits.check_message(payload, headers, max_payload)
    return Outgoing(subject, payload, headers)


def encode_raw(subject: str, payload: bytes, message_id: str, headers: dict[str, str] | None,
               max_payload: int) -> Outgoing:
    """A non-CloudEvent record (a run, a dead letter), checked like an event."""
    headers = {**(headers or {}), "Nats-Msg-Id": message_id}
    limits.check_subject(subject)
    limits.check_headers(headers)
    limits.check_message(payload, headers, max_payload)
    return Outgoing(subject, payload, headers)


class Acks:
    """Pipelined JetStream publishes on one connection: storage acks as futures (see the module)."""

    def __init__(self, nc: Client) -> None:
        self.nc = nc
        self._prefix = nc.new_inbox()
        self._tokens = itertools.count()
        self._waiting: dict[str, asyncio.Future] = {}
        self._subscribed: asyncio.Future | None = None

    async def send(self, message: Outgoing, timeout: float) -> Published:
        """Publish and wait for the storage ack. ``BusUnavailable`` for what a retry can fix (no
        answer, no connection, no stream); ``BadRequest`` when JetStream refused this message itself
        (a 400: it never will)."""
        results = await self._settle([await self._publish(message)], timeout)
        return _result(results[0])

    async def send_all(self, messages: list[Outgoing], timeout: float) -> list[Published | Exception]:
        """Publish every message, then await their acks together: a ``Published`` or the exception
        :meth:`send` would raise, per message, in order."""
        futures = []
        for message in messages:
            try:
                futures.append(await self._publish(message))
            except errors.BusUnavailable as exc:
                futures.append(_failed(exc))
        return await self._settle(futures, timeout)

    async def _publish(self, message: Outgoing) -> asyncio.Future:
        if self._subscribed is None:  # one subscription, made by the first sender; the rest wait on it
            self._subscribed = asyncio.ensure_future(self.nc.subscribe(f"{self._prefix}.*", cb=self._reply))
        try:
            await asyncio.shield(self._subscribed)
        except nats.errors.Error as exc:  # the connection closed under it: the next sender tries again
            self._subscribed = None
            raise errors.BusUnavailable(f"JetStream did not confirm storage: {exc.__class__.__name__}") from exc
        token = str(next(self._tokens))
        future = asyncio.get_running_loop().create_future()
        self._waiting[token] = future
        try:
            await self.nc.publish(message.subject, message.payload, reply=f"{self._prefix}.{token}",
                                  headers=message.headers)
        except nats.errors.Error as exc:
            del self._waiting[token]
            raise errors.BusUnavailable(f"JetStream did not confirm storage: {exc.__class__.__name__}") from exc
        return future

    async def _settle(self, futures: list[asyncio.Future], timeout: float) -> list[Published | Exception]:
        if not futures:
            return []
        try:
            async with asyncio.timeout(timeout):
                await asyncio.wait(futures)
        except TimeoutError:
            pass
        results: list[Published | Exception] = []
        for future in futures:
            if future.done():
                results.append(future.exception() or future.result())
            else:
                future.cancel()
                results.append(errors.BusUnavailable("JetStream did not confirm storage: TimeoutError"))
        if any(f.cancelled() for f in futures):
            for token in [t for t, f in self._waiting.items() if f.done()]:  # the timed-out ones
                del self._waiting[token]
        return results

    async def _reply(self, msg: Msg) -> None:
        future = self._waiting.pop(msg.subject[len(self._prefix) + 1:], None)
        if future is None or future.done():
            return  # an ack after its timeout: the sender was told 503 and retries into the dedupe
        try:
            future.set_result(_ack(msg))
        except errors.IngestError as exc:
            future.set_exception(exc)


def _ack(msg: Msg) -> Published:
    """The storage ack JetStream answered, or the error it means."""
    if msg.headers and msg.headers.get("Status") == "503":
        raise errors.BusUnavailable("JetStream did not confirm storage: no stream for the subject (no responders)")
    try:
        answer = json.loads(msg.data)
    except ValueError:
        raise errors.BusUnavailable("JetStream did not confirm storage: the ack is not JSON") from None
    error = answer.get("error") if isinstance(answer, dict) else {"description": "the ack is not an object"}
    if error:
        description = error.get("description") or f"error {error.get('code')}"
        if error.get("code") == 400:
            raise errors.BadRequest(f"JetStream refused the message: {description}", limit="jetstream")
        raise errors.BusUnavailable(f"JetStream did not confirm storage: {description}")
    try:
        return Published(str(answer["stream"]), int(answer["seq"]), bool(answer.get("duplicate")))
    except (KeyError, TypeError, ValueError):
        raise errors.BusUnavailable("JetStream did not confirm storage: the ack names no stream and sequence") from None


def _failed(exc: Exception) -> asyncio.Future:
    future = asyncio.get_running_loop().create_future()
    future.set_exception(exc)
    return future


def _result(result: Published | Exception) -> Published:
    if isinstance(result, Exception):
        raise result
    return result


def _unencodable(event: events.CloudEvent) -> str:
    for name, value in event.attributes.items():
        try:
            str(value).encode()
        except UnicodeEncodeError:
            return name
    return "datacontenttype"
