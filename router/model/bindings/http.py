"""The CloudEvents HTTP protocol binding: receiving (``parse``) and, for subscriptions' sinks, sending.

The mode is decided by ``Content-Type`` (HTTP binding §3): ``application/cloudevents-batch+json``
is a batch, ``application/cloudevents+json`` is structured, anything else with ``ce-specversion``
present is binary. A structured request in another event format is answered 415, since only the
JSON format is supported.

Attribute types follow the mode. Structured and batch requests carry JSON types, so ``"myint": 42``
is an Integer. A binary-mode ``ce-myint: 42`` is the String ``"42"`` (§3.1.3.2: a header is the
canonical string), unless the producer declares the type with ``Trigger-Router-Attribute-Types:
myint=integer`` (``headers.attributes_from``), the header trigger-router itself adds on the bus.
Either way the event is published with the types it was accepted with, so a rule sees the same
values live as ``rules test`` sees in the equivalent structured JSON.

A binary-mode body declared JSON (``Content-Type: application/json`` or ``+json``) is parsed here,
with the same limits as a structured event's ``data`` (``jsontext``): data that says it is JSON and
is not would otherwise be stored, and fail every rule that reads it.
"""

from __future__ import annotations

from typing import Iterable

from router import errors
from router.model import events
from router.model.bindings import headers as ce_headers

STRUCTURED_PREFIX = "application/cloudevents"
BATCH = "application/cloudevents-batch+json"
STRUCTURED_JSON = "application/cloudevents+json"


def parse(content_type: str | None, hdrs: Iterable[tuple[str, str]], body: bytes) -> list[events.CloudEvent]:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == BATCH:
        return events.parse_batch(body)
    if media == STRUCTURED_JSON:
        return [events.parse_structured(body)]
    if media.startswith(STRUCTURED_PREFIX):
        raise errors.UnsupportedMediaType(
            f"event format {media!r} is not supported; use {STRUCTURED_JSON}, {BATCH} or binary mode"
        )
    attributes: dict = ce_headers.attributes_from(hdrs)
    if "specversion" not in attributes:
        raise errors.UnsupportedMediaType(
            f"content type {media or '(none)'!r} is neither a CloudEvents format nor a binary-mode "
            "request (no ce-specversion header)"
        )
    if content_type:
        attributes["datacontenttype"] = content_type
    validated = events.validate(attributes)
    if body and events.is_json_media_type(content_type or ""):
        return [events.CloudEvent(validated, body, events.load_json(body, what="data", field="data"))]
    return [events.CloudEvent(validated, body if body else None)]


def to_binary(event: events.CloudEvent, extensions: dict[str, str] | None = None) -> tuple[dict[str, str], bytes]:
    """The sending side, binary mode (HTTP binding §3.1): ``ce-`` headers, ``Content-Type``, the data.

    ``extensions``: attributes added on the way out only (a dead-letter's ``knativeerrorcode``).
    """
    hdrs = ce_headers.to_headers({**event.attributes, **(extensions or {})}, skip="datacontenttype")
    if event.datacontenttype:
        hdrs["Content-Type"] = event.datacontenttype
    return hdrs, event.data or b""
