"""Bounds every message is checked against before it reaches NATS, and the start-up size check.

nats-server answers a message it cannot take with ``-ERR`` and closes the connection, and nats-py
then closes its client for good: one oversized subject, header block or payload would cut every
part of the router off NATS. So nothing is sent that the server could refuse. The bounds:

- a subject (``<bus.events_subject>.<type>`` for an event) must be one publish subject (no
  whitespace or control characters, empty tokens or wildcards), else the control line is misread,
  and at most ``MAX_SUBJECT_BYTES``: nats-server reads ``HPUB <subject> <reply inbox> <sizes>`` as
  one control line of at most 4 KiB (``max_control_line``); 1 KiB leaves room for the inbox and
  keeps JetStream's subject index small.
- ``MAX_ATTRIBUTE_BYTES``: one attribute value, in UTF-8 (an event's ``type`` is bounded by the
  subject first). ``MAX_ATTRIBUTES``: attributes of one event (each is a ``ce-`` header).
- the header block at most ``MAX_HEADER_BYTES`` (JetStream's 64 KiB); header names must be HTTP
  tokens and values must not contain CR, LF or NUL (they would end the NATS header block early);
  ``MAX_HEADERS`` per message.
- the whole message, headers included, against the ``max_payload`` the server announced at connect.

Each violation is an ``errors.IngestError`` with ``limit`` naming the bound, permanent: retrying
cannot help, so the edge answers 4xx, never 503. A limit the router is configured with but the bus
cannot store (``http.max_body_bytes`` against ``max_payload``) is refused by :func:`check` when
``serve`` connects.
"""

from __future__ import annotations

import re
from typing import Mapping

from router import errors

__all__ = ["HEADER_ROOM", "MAX_ATTRIBUTE_BYTES", "MAX_ATTRIBUTES", "MAX_HEADER_BYTES", "MAX_HEADERS",
           "MAX_SUBJECT_BYTES", "check", "check_attributes", "check_headers", "check_message", "check_subject"]

HEADER_OVERHEAD = 16
"""``NATS/1.0`` status line and the blank line that ends the header block."""
HEADER_ROOM = 8 * 1024
"""Bytes kept free in a message for the ``ce-`` and ``Nats-Msg-Id`` headers of an ingested event."""
MAX_SUBJECT_BYTES = 1024
MAX_ATTRIBUTE_BYTES = 4096
MAX_ATTRIBUTES = 64
MAX_HEADER_BYTES = 65535
"""JetStream's limit on one message's header block (``NATS/1.0`` line included)."""
MAX_HEADERS = MAX_ATTRIBUTES + 8
"""The ``ce-`` headers plus ``Content-Type``, ``Nats-Msg-Id`` and the attribute types header."""

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_UNSAFE_VALUE = re.compile(r"[\r\n\x00]")
_UNSAFE_SUBJECT = re.compile(r"[\s\x00-\x1f\x7f]")


def check(max_body_bytes: int, max_payload: int) -> None:
    """``ConfigError`` when a request body of ``max_body_bytes`` could not be stored as one message."""
    fits = max_payload - HEADER_ROOM
    if max_body_bytes > fits:
        raise errors.ConfigError(
            f"{max_body_bytes} bytes do not fit in one NATS message: the server's "
            f"max_payload is {max_payload}, and {HEADER_ROOM} bytes are kept for headers; set "
            f"http.max_body_bytes to at most {fits}, or raise max_payload in the nats-server configuration",
            path="http.max_body_bytes")


def check_message(payload: bytes, headers: dict[str, str], max_payload: int) -> None:
    """``PayloadTooLarge`` for a message the server would refuse; checked before it is sent.

    nats-py checks only the payload, not the headers, against ``max_payload``; JetStream refuses a
    header block over ``MAX_HEADER_BYTES`` (with a 400 that used to be answered as a 503).
    """
    header_size = sum(len(k) + len(v.encode("utf-8", "surrogatepass")) + 4 for k, v in headers.items()) \
        + HEADER_OVERHEAD
    size = len(payload) + header_size
    if max_payload and size > max_payload:
        raise errors.PayloadTooLarge(f"the message is {size} bytes with its headers; "
                                     f"the NATS server stores at most {max_payload} (max_payload)",
                                     limit="max_payload")
    if header_size > MAX_HEADER_BYTES:
        raise errors.PayloadTooLarge(f"the message's headers are {header_size} bytes; JetStream stores at most "
                                     f"{MAX_HEADER_BYTES} (max_header_bytes)", limit="max_header_bytes")


def check_subject(subject: str, field: str | None = None) -> None:
    """``PayloadTooLarge`` for a subject over ``MAX_SUBJECT_BYTES`` (``field``: where it came from);
    ``BadRequest`` for one the server would not read as one subject (whitespace or control
    characters split or end the control line; an empty token or a wildcard is not a publish subject)."""
    if _UNSAFE_SUBJECT.search(subject) or any(token in ("", "*", ">") for token in subject.split(".")):
        raise errors.BadRequest(f"{subject[:64]!r} is not a NATS publish subject", field=field,
                                limit="subject_syntax")
    size = len(subject.encode("utf-8", "surrogatepass"))
    if size > MAX_SUBJECT_BYTES:
        what = f"attribute '{field}' makes the subject" if field else "the subject is"
        raise errors.PayloadTooLarge(f"{what} {size} bytes long; at most {MAX_SUBJECT_BYTES} are allowed "
                                     "(max_subject_bytes)", field=field, limit="max_subject_bytes")


def check_attributes(attributes: Mapping[str, object]) -> None:
    """``PayloadTooLarge`` for too many attributes or an attribute value over ``MAX_ATTRIBUTE_BYTES``."""
    if len(attributes) > MAX_ATTRIBUTES:
        raise errors.PayloadTooLarge(f"the event has {len(attributes)} attributes; at most {MAX_ATTRIBUTES} "
                                     "are allowed (max_attributes)", limit="max_attributes")
    for name, value in attributes.items():
        if value.__class__ is str and len(value) * 4 > MAX_ATTRIBUTE_BYTES:  # only long ones are measured
            size = len(value.encode("utf-8", "surrogatepass"))
            if size > MAX_ATTRIBUTE_BYTES:
                raise errors.PayloadTooLarge(f"attribute '{name}' is {size} bytes; at most {MAX_ATTRIBUTE_BYTES} "
                                             "are allowed (max_attribute_bytes)", field=name,
                                             limit="max_attribute_bytes")


def check_headers(headers: Mapping[str, str]) -> None:
    """``BadRequest`` for a header that would break the NATS header block; ``PayloadTooLarge`` for too many."""
    if len(headers) > MAX_HEADERS:
        raise errors.PayloadTooLarge(f"the message has {len(headers)} headers; at most {MAX_HEADERS} are "
                                     "allowed (max_headers)", limit="max_headers")
    for name, value in headers.items():
        if not _TOKEN.match(name):
            raise errors.BadRequest(f"header name {name!r} is not an HTTP token", field=name, limit="header_syntax")
        if _UNSAFE_VALUE.search(value):
            raise errors.BadRequest(f"header {name} contains CR, LF or NUL", field=name, limit="header_syntax")

