"""What a remote CloudEvents function's answer means: the reply contract of the ``cloudevent`` action.

Kept apart from the HTTP call so the contract (``docs/remote-functions.md``) is one readable,
table-tested piece:

- a 2xx without a body, or with a body that is no CloudEvent (no ``ce-specversion`` header, not
  ``application/cloudevents+json``), is ``success``: the function took the event;
- a 2xx with a reply CloudEvent, binary or structured mode (``plugins.http_binding.parse``, the
  same reading as ``/events``), ends the run with what its JSON ``data`` says:
  ``{"outcome": "success" | "failure" | "error", "reason": str, "checks": [{"name", "passed", ...}],
  "severity": "low" | ... | "critical"}``, every member optional; data without ``outcome`` (or not
  JSON) is ``success``; data that breaks the contract (an unknown outcome, a check without
  ``name``/``passed``) is ``error`` naming the member, since a function that cannot say what it
  found has not verified anything;
- a reply without ``id`` or ``source`` gets them from the run (:func:`derived_id`, ``/trigger-
  router/rules/<rule>/function``), so the same run's reply is the same event however often the run
  is carried out, and JetStream's duplicate window keeps ``publishReply`` to one event.
"""

from __future__ import annotations

from typing import Any, Iterable, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from router.plugins import actions, cdevents, errors, events, http_binding

REPLY_SOURCE = "/trigger-router/rules/{rule}/function"


class Check(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1)
    passed: bool


class ReplyData(BaseModel):
    """The reply's ``data``: unknown members are kept out of the outcome, not refused."""

    model_config = ConfigDict(extra="ignore")

    outcome: Literal["success", "failure", "error"]
    reason: str = ""
    checks: list[Check] = []
    severity: Literal["low", "medium", "high", "critical"] | None = None


def derived_id(run_id: str) -> str:
    """The id of a reply that names none: one per run (a UUIDv5, pinned by a golden test)."""
    return cdevents.deterministic_id("function-reply", run_id)


def carries_event(content_type: str | None, headers: Iterable[tuple[str, str]]) -> bool:
    """Whether an answer says it is a CloudEvent: a ``ce-specversion`` header (binary mode) or an
    ``application/cloudevents`` media type (structured mode, batch)."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media.startswith(http_binding.STRUCTURED_PREFIX) or any(
        name.lower() == "ce-specversion" for name, _ in headers)


def reply_event(content_type: str | None, headers: Iterable[tuple[str, str]], body: bytes, *, run_id: str,
                rule: str) -> events.CloudEvent | None:
    """The reply CloudEvent of a 2xx answer, or None when the answer carries none.

    ``errors.PermanentError`` when it claims to be one and is not valid."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    headers = list(headers)
    if not carries_event(content_type, headers):
        return None
    binary = any(name.lower() == "ce-specversion" for name, _ in headers)
    structured = media.startswith(http_binding.STRUCTURED_PREFIX)
    defaults = {"id": derived_id(run_id), "source": REPLY_SOURCE.format(rule=rule)}
    try:
        if structured and media == http_binding.STRUCTURED_JSON:
            document = events.load_json(body, what="reply")
            if isinstance(document, dict):
                document = {**defaults, **{k: v for k, v in document.items() if v not in (None, "")}}
            return events.from_json_object(document)
        if binary and not structured:
            present = {name.lower() for name, value in headers if value.strip()}
            headers = [(n, v) for n, v in headers if n.lower() not in ("ce-id", "ce-source") or v.strip()]
            headers += [(f"ce-{k}", v) for k, v in defaults.items() if f"ce-{k}" not in present]
        found = http_binding.parse(content_type, headers, body)
    except errors.IngestError as exc:
        where = f" ({exc.field})" if exc.field else ""
        raise errors.PermanentError(f"the reply is not a valid CloudEvent{where}: {exc.detail}") from exc
    if len(found) != 1:
        raise errors.PermanentError(f"the reply is a batch of {len(found)} events; one reply event is expected")
    return found[0]


def result_of(reply: events.CloudEvent) -> actions.Result:
    """The run's result from the reply event's data (the contract above)."""
    try:
        data = reply.json() if reply.data is not None and reply.is_json() else None
    except errors.IngestError:
        data = None
    if not isinstance(data, dict) or "outcome" not in data:
        return actions.Result("success", f"the function replied {reply.type} (its data names no outcome)")
    try:
        parsed = ReplyData.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise errors.PermanentError(f"the reply's data.{where} breaks the reply contract: {first['msg']}") from exc
    checks: list[dict[str, Any]] = [check.model_dump() for check in parsed.checks]
    reason = parsed.reason or f"the function replied {parsed.outcome}"
    return actions.Result(parsed.outcome, reason, checks, parsed.severity)


def with_trace(reply: events.CloudEvent, traceparent: str | None) -> events.CloudEvent:
    """``reply`` continuing the run's trace when it carries no trace context of its own."""
    if not traceparent or "traceparent" in reply.attributes:
        return reply
    return events.CloudEvent({**reply.attributes, "traceparent": traceparent}, reply.data, reply._json)
