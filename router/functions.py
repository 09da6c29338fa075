"""The public API of in-process functions: what ``action: function: {ref: "pkg.mod:handler"}`` calls.

A function is ``async def handler(event, ctx) -> Result | bool | None`` (or a plain ``def``, run on a
worker thread) in a module of the function author's. Authors import this module and nothing else of
``router``, so the router's insides can move without breaking their code; what is here is versioned
by :data:`API_VERSION` (a new field or method is a minor version, a removal or a changed meaning
a major one). The reference is ``docs/functions.md``.

How a function's end maps to the run's outcome (the same as for every action):

- ``Result(passed=True, ...)``, ``True`` or ``None``: ``success``;
- ``Result(passed=False, reason)`` or ``False``: ``failure`` (the reason is the first failing check's
  when none is given);
- raising :class:`TemporaryError`: retried under the rule's ``policy.retry``;
- raising :class:`PermanentError`: ``error``, not retried; any other exception: ``error`` naming
  its type; running past ``policy.timeout``: the task is cancelled and the run ends ``error``.

The checks a function runs through ``ctx.probe`` and ``ctx.rollout_check`` are kept in
``ctx.checks`` and published in the outcome with the ones its ``Result`` lists.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Literal, Mapping, Protocol, Sequence

from router.errors import PermanentError, TemporaryError
from router.model import events as model_events

__all__ = ["API_VERSION", "Check", "Context", "Event", "PermanentError", "Result", "TemporaryError"]

API_VERSION = "1.0"
"""``major.minor`` of this API; a function can refuse to load under a major version it does not know."""

Severity = Literal["low", "medium", "high", "critical"]


@dataclass(frozen=True)
class Event:
    """A CloudEvent as a function sees it: its attributes and its data (parsed when JSON)."""

    id: str
    source: str
    type: str
    subject: str | None
    time: str | None
    data: Any
    """The data parsed as JSON, or the raw bytes when the event's content type is not JSON."""
    attributes: Mapping[str, Any]
    """Every attribute, extensions included (``traceparent``, ``sequence``...)."""

    @classmethod
    def of(cls, event: model_events.CloudEvent) -> "Event":
        data = event.json() if event.is_json() else event.data
        return cls(event.id, event.source, event.type, event.subject, event.attributes.get("time"), data,
                   dict(event.attributes))


@dataclass(frozen=True)
class Check:
    """One thing a function verified; published in the outcome's ``checks`` like httpProbe's."""

    name: str
    passed: bool
    detail: str | None = None
    """What was seen (``version abc123``)."""
    error: str | None = None
    """What did not hold, for a check that failed."""
    data: Mapping[str, Any] = field(default_factory=dict)
    """More fields published with the check (JSON values: ``{"status": 200, "latencyMs": 12.5}``)."""

    def as_dict(self) -> dict[str, Any]:
        found = {"name": self.name, "passed": self.passed, **self.data}
        found.update({k: v for k, v in (("detail", self.detail), ("error", self.error)) if v is not None})
        return found


@dataclass(frozen=True)
class Result:
    """How a function's verification ended: passed or not, why, and what it checked."""

    passed: bool
    reason: str = ""
    checks: Sequence[Check] = ()
    severity: Severity | None = None

    @classmethod
    def success(cls, reason: str = "", checks: Sequence[Check] = ()) -> "Result":
        return cls(True, reason, tuple(checks))

    @classmethod
    def failure(cls, reason: str, checks: Sequence[Check] = (), severity: Severity | None = "high") -> "Result":
        return cls(False, reason, tuple(checks), severity)


class Helpers(Protocol):
    """What the router supplies behind a :class:`Context` (tests may supply their own)."""

    def secret(self, name: str) -> str: ...
    async def publish(self, event: Mapping[str, Any], index: int) -> str: ...
    async def http(self) -> Any: ...
    async def kubernetes(self) -> Any: ...
    async def probe(self, url: str, options: Mapping[str, Any], timeout: float) -> Check: ...
    async def rollout_check(self, namespace: str, name: str, options: Mapping[str, Any], timeout: float) -> Result: ...


class Context:
    """What a function gets besides its event. One per attempt: ``attempt`` counts from 1."""

    def __init__(self, *, run_id: str, rule: str, attempt: int, deadline: float, params: Mapping[str, Any],
                 events: Mapping[str, Event], log: logging.LoggerAdapter, traceparent: str | None,
                 helpers: Helpers) -> None:
        self.run_id = run_id
        """The run's id: stable across attempts and redeliveries, so it serves as an idempotency key."""
        self.rule = rule
        self.attempt = attempt
        self.deadline = deadline
        """``time.monotonic()`` at which this attempt is cancelled (``policy.timeout``)."""
        self.params = params
        """``spec.action.function.params`` with their templates rendered for this event."""
        self.events = events
        """A correlated run's joined events by requirement name (``correlate.require[].name``); else empty."""
        self.log = log
        """A logger whose lines carry the run id and rule; secret values read here are masked in it."""
        self.traceparent = traceparent
        """The run's W3C trace context; ``ctx.http`` sends it, send it on with other requests."""
        self.checks: list[Check] = []
        """Checks run through :meth:`probe` and :meth:`rollout_check`, in order; they end up in the outcome."""
        self._helpers = helpers
        self._published = 0

    def remaining(self) -> float:
        """Seconds left before this attempt is cancelled."""
        return max(self.deadline - time.monotonic(), 0.0)

    def secret(self, name: str) -> str:
        """The secret ``name`` (``functions.secrets`` or a file of ``functions.secrets_dir``); its value
        is masked in the log and the outcome. ``PermanentError`` when it is not configured."""
        return self._helpers.secret(name)

    async def http(self) -> Any:
        """An ``aiohttp.ClientSession`` for this run (closed after it), sending ``traceparent``."""
        return await self._helpers.http()

    async def kubernetes(self) -> Any:
        """The router's Kubernetes client (``kubernetes.*`` settings): ``await k.request("GET", path)``."""
        return await self._helpers.kubernetes()

    async def probe(self, url: str, **options: Any) -> Check:
        """httpProbe's check of one URL, tried once (options as in a check: ``method``, ``headers``,
        ``expectStatus``, ``bodyContains``, ``jsonEquals``, ``maxLatency``...); recorded in ``checks``."""
        check = await self._helpers.probe(url, options, self.remaining())
        self.checks.append(check)
        return check

    async def rollout_check(self, namespace: str, name: str, **options: Any) -> Result:
        """rolloutCheck's verdict on a workload (``kind``, ``expectedDigest``, ``maxRestarts``,
        ``timeout``...); its checks are recorded in ``checks``."""
        result = await self._helpers.rollout_check(namespace, name, options, self.remaining())
        self.checks.extend(result.checks)
        return result

    async def publish(self, event: Mapping[str, Any]) -> str:
        """Publish a follow-up CloudEvent on the events stream (rules can match it); returns its id.

        ``event``: ``{"type": ..., "data": ..., "subject"?: ..., "id"?: ...}``; without ``id``, one
        derived from the run id and the order of publishes, so a retried attempt's copy is dropped."""
        self._published += 1
        return await self._helpers.publish(event, self._published)


Handler = Callable[[Event, Context], "Awaitable[Result | bool | None] | Result | bool | None"]
