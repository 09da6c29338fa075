"""What an action receives and returns; actions themselves live in ``handlers/actions``.

An action is an async function ``run(params, context) -> Result`` registered with
``@plugins.action(name, params=Model)``. ``params`` is its pydantic model, validated once at rule
load (with templates still unrendered) and again after rendering for each run. Raising
``errors.TemporaryError`` asks for a retry under the rule's policy; ``errors.PermanentError`` ends
the run with outcome ``error``; a verification that ran and found a problem returns ``failure``.

``Context.publish`` is the one way an action puts an event on the events stream (the
``cloudevent`` action's ``publishReply``, so functions can chain): the event is deduplicated by
its (source, id) like every publish, so an action that derives the id from the run id publishes
once however often the run is carried out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, ClassVar, Mapping

from pydantic import BaseModel, ConfigDict

from router.model.events import CloudEvent
from router.model.outcomes import Outcome, Result, Severity

__all__ = ["Context", "Outcome", "Params", "Result", "Severity"]


class Params(BaseModel):
    """Base of every action's parameter model: unknown keys are errors, camelCase as written."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    cluster_only: ClassVar[Mapping[str, str]] = {}
    """Parameters (as written, camelCase) a namespaced TriggerRule may not set, each with why: they
    reach beyond the namespace (a router-local file, the router's own event stream). Refused at
    rule load (``rules.loading``); a ClusterTriggerRule or a rule file may set them."""


@dataclass(frozen=True)
class Context:
    run_id: str
    rule: str
    event: CloudEvent
    timeout: float
    """Seconds this attempt may take; the executor cancels the action after it."""
    traceparent: str | None = None
    """The run's W3C trace context (a span of the trigger's trace): send it on with the action's
    requests (``traceparent`` header), Jobs (annotation, ``TRACEPARENT``), so the trace continues."""
    attempt: int = 1
    """Which attempt this is under ``policy.retry``, from 1."""
    deadline: float | None = None
    """``time.monotonic()`` at which this attempt is cancelled; ``None``: ``timeout`` from now."""
    joined: Mapping[str, CloudEvent] = field(default_factory=dict)
    """A correlated run's joined events by requirement name (fetched from the events stream)."""
    publish: Callable[[CloudEvent], Awaitable[Any]] | None = None
    """Publish an event to the events stream (deduplicated by its source and id), or None where
    the action runs without a bus (``rules test``, unit tests). Raises ``errors.IngestError``
    (``BusUnavailable`` while JetStream cannot store, ``BadRequest``/``PayloadTooLarge`` for an
    event that can never be stored)."""
    session: Any = None
    """The executor's shared ``aiohttp.ClientSession`` (kept-alive connections, no base URL, no
    default headers) for actions that call a service many runs share (``cloudevent``), or None
    (``functions invoke``, unit tests): then open one for the call. A probe of a deployment should
    open its own, so each run measures fresh connections."""
