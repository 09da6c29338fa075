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
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext

from router import errors
from router.bus import limits
from router.model import events
from router.model.bindings import nats as nats_binding

__all__ = ["Outgoing", "Published", "encode", "encode_raw", "msg_id", "send", "subject_token"]

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


def encode(event: events.CloudEvent, subject: str, max_payload: int, *, from_type: bool = True) -> Outgoing:
    """The message for ``event`` on ``subject``; ``IngestError`` naming the limit or attribute if it
    could never be stored. ``from_type``: the subject was built from the event's ``type``."""
    limits.check_subject(subject, "type" if from_type else None)
    limits.check_attributes(event.attributes)
    try:
        headers, payload = nats_binding.to_binary(event)
    except UnicodeEncodeError as exc:  # a lone surrogate ("\ud800") from a JSON string
        raise errors.BadRequest(f"attribute '{_unencodable(event)}' is not valid Unicode",
                                field=_unencodable(event)) from exc
    headers["Nats-Msg-Id"] = msg_id(event)
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


async def send(js: JetStreamContext, message: Outgoing, timeout: float) -> Published:
    """Publish and wait for the storage ack. ``BusUnavailable`` for what a retry can fix (no answer,
    no connection); ``BadRequest`` when JetStream refused this message itself (a 400: it never will)."""
    try:
        ack = await js.publish(message.subject, message.payload, timeout=timeout, headers=message.headers)
    except nats.js.errors.BadRequestError as exc:
        raise errors.BadRequest(f"JetStream refused the message: {exc.description or exc}",
                                limit="jetstream") from exc
    except (asyncio.TimeoutError, nats.errors.Error, nats.js.errors.Error) as exc:
        raise errors.BusUnavailable(f"JetStream did not confirm storage: {exc.__class__.__name__}") from exc
    return Published(ack.stream, ack.seq, bool(ack.duplicate))


def _unencodable(event: events.CloudEvent) -> str:
    for name, value in event.attributes.items():
        try:
            str(value).encode()
        except UnicodeEncodeError:
            return name
    return "datacontenttype"
