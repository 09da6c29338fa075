"""W3C trace context on events: the CloudEvents distributed-tracing extension, kept end to end.

An event carries ``traceparent`` (and ``tracestate``) as extension attributes
(``../shared/specs/cloudevents/cloudevents/extensions/distributed-tracing.md``). Where it comes
from, in order: the event's own attributes (a sender that traces), else the HTTP request's
``traceparent`` header (a webhook sent by a traced CI job), else a new trace started when the event
is published. Everything caused by the event continues that trace with a span id of its own: the
outcome events, the action's HTTP requests (``traceparent`` header), a Job (annotation and
``TRACEPARENT`` in its environment) and every log line of the run (``trace_id``).

Values are checked against the W3C grammar (version ``00``, 32 and 16 lower-case hex digits, not
all zero, two flag digits); an invalid one is replaced by a new trace rather than passed on, as the
W3C recommendation asks of a receiver.
"""

from __future__ import annotations

import re
import secrets
from typing import Mapping

from router.model import events

__all__ = ["ATTRIBUTE", "STATE", "child", "ensure", "new", "parse", "trace_id", "valid"]

ATTRIBUTE = "traceparent"
STATE = "tracestate"
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16
MAX_TRACESTATE = 512
"""W3C: a tracestate of up to 512 characters must be propagated; longer ones are dropped here."""


def parse(value: str | None) -> tuple[str, str, str] | None:
    """(trace id, parent span id, flags) of a valid ``traceparent``, else ``None``."""
    if not isinstance(value, str):
        return None
    found = _TRACEPARENT.match(value.strip())
    if not found:
        return None
    version, trace, span, flags, rest = found.groups()
    if version == "ff" or trace == _ZERO_TRACE or span == _ZERO_SPAN or (version == "00" and rest):
        return None
    return trace, span, flags


def valid(value: str | None) -> bool:
    return parse(value) is not None


def new() -> str:
    """A new sampled trace: ``00-<trace id>-<span id>-01``."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def child(value: str | None) -> str:
    """The same trace with a new span id (a new trace if ``value`` is missing or invalid)."""
    parsed = parse(value)
    if parsed is None:
        return new()
    trace, _, flags = parsed
    return f"00-{trace}-{secrets.token_hex(8)}-{flags}"


def trace_id(value: str | None) -> str | None:
    parsed = parse(value)
    return parsed[0] if parsed else None


def of(event: events.CloudEvent) -> str | None:
    value = event.attributes.get(ATTRIBUTE)
    return value if isinstance(value, str) and valid(value) else None


def ensure(event: events.CloudEvent, incoming: Mapping[str, str] | None = None) -> events.CloudEvent:
    """``event`` with a valid ``traceparent``: its own, the request's (``incoming`` headers), or new."""
    if of(event) is not None:
        return event
    attributes = dict(event.attributes)
    header = _header(incoming, ATTRIBUTE) if incoming else None
    if valid(header):
        attributes[ATTRIBUTE] = header.strip()
        state = _header(incoming, STATE)
        if state and len(state) <= MAX_TRACESTATE and state.isprintable():
            attributes[STATE] = state.strip()
    else:
        attributes[ATTRIBUTE] = new()
        attributes.pop(STATE, None)  # a tracestate belongs to the traceparent it came with
    return events.CloudEvent(attributes, event.data, event._json)


def continued(cause: events.CloudEvent) -> dict[str, str]:
    """The attributes an event caused by ``cause`` carries: the same trace, a span of its own."""
    attributes = {ATTRIBUTE: child(of(cause))}
    state = cause.attributes.get(STATE)
    if isinstance(state, str) and of(cause) is not None:
        attributes[STATE] = state
    return attributes


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    if headers is None:
        return None
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value
