"""Runs: one per (event, rule), recorded durably before the event is acknowledged.

A run's id is a hash of (rule name, event source, event id), so the same event matched by the same
rule always yields the same run id. The run record is a message on the runs work-queue stream,
published with ``Nats-Msg-Id`` = run id: a redelivered event publishes it again and JetStream drops
the copy, which is what makes "a crash before the ack causes redelivery but no second run" true.
The run's progress (queued, running, finished, outcome) is kept in a JetStream KV bucket for
``runs list`` / ``runs show``. Every write to it after ``queued`` is a compare-and-set on the
entry's revision (``router.engine.lease``): that is what fences two executors that both believe they
own a run, and what makes "the result is stored before ``finished`` is announced" one answer.

A record stays small whatever the event: an event larger than ``EMBED_LIMIT`` is not copied into
the record but referred to by its events-stream sequence (``event_ref``) and fetched by the
executor, so an 800 KB webhook does not become an 1 MB run record the bus cannot store.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from nats.js import JetStreamContext, api

from router.bus import kv
from router.config.settings import Settings
from router.model import events


def run_id(rule: str, event: events.CloudEvent) -> str:
    return hashlib.sha256(f"{rule}\x00{event.source}\x00{event.id}".encode()).hexdigest()[:32]


@dataclass
class RunRecord:
    """The durable description of a run: everything needed to execute it without the rule file."""

    run_id: str
    rule: str
    params: dict[str, Any]
    environment: str
    event: dict[str, Any] | None
    """The triggering event in the JSON format, or ``None`` when it is referred to by ``event_ref``."""
    timeout: float
    retry_limit: int
    retry_backoff: float
    retry_max_backoff: float
    action: str
    queued_at: float = field(default_factory=time.time)
    render_error: str | None = None
    not_before: float = 0.0
    """Epoch seconds before which the executor must not start it (debounce, delay, rate limit)."""
    policy: dict[str, Any] = field(default_factory=dict)
    """Policy-bucket keys the executor consults: ``slot`` + ``mode`` (concurrency), ``latest`` (debounce)."""
    seq: int = 0
    """Stream sequence of the triggering event: the arrival order policies agree on."""
    events: dict[str, Any] | None = None
    """A correlated run's joined events by requirement name (JSON format)."""
    retry_of: str | None = None
    """The run this one re-runs by hand (``runs retry``)."""
    decision: dict[str, Any] | None = None
    """What run policies decided at routing (``policy.admission.Decision``); None: no policy applied."""
    event_ref: list[Any] | None = None
    """``[stream, sequence]`` of the triggering event when it is too large to embed."""
    summary: dict[str, str] | None = None
    """The triggering event's ``id``, ``source`` and ``type``, when the event itself is not embedded."""
    traceparent: str | None = None
    """The triggering event's W3C trace context (``model.tracecontext``), for logs and the action."""
    stored_at: list[Any] | None = None
    """``[stream, sequence]`` of the triggering event, always (``runs show`` and the web view read it back)."""
    report: dict[str, Any] | None = None
    """``spec.report`` rendered, with the commit the trigger names (``router.engine.reports.plan``)."""

    def dumps(self) -> bytes:
        return json.dumps(self.__dict__, separators=(",", ":")).encode()

    @classmethod
    def loads(cls, raw: bytes) -> "RunRecord":
        return cls(**json.loads(raw))

    def trigger(self) -> events.CloudEvent:
        """The embedded triggering event; a referenced one is fetched with ``fetch_trigger``."""
        if self.event is None:
            raise ValueError(f"run {self.run_id}: the event is referenced, not embedded")
        return events.from_json_object(self.event)

    def about(self) -> dict[str, str]:
        """The triggering event's ``id``, ``source`` and ``type`` without fetching it."""
        if self.event is not None:
            return {k: self.event.get(k) for k in ("id", "source", "type")}
        return dict(self.summary or {})


EMBED_LIMIT = 16 * 1024
"""Events up to this size (JSON format) are copied into the run record; larger ones are referred to."""


def embed(event: events.CloudEvent, stream: str, sequence: int) -> dict[str, Any]:
    """The ``event`` / ``event_ref`` / ``summary`` fields of a record for ``event``."""
    document = events.to_json_object(event, binary=True)
    if len(document.get("data_base64") or "") <= EMBED_LIMIT:
        return {"event": document}
    return {"event": None, "event_ref": [stream, sequence],
            "summary": {"id": event.id, "source": event.source, "type": event.type}}


def runs_stream_config(settings: Settings) -> api.StreamConfig:
    router = settings.router
    return api.StreamConfig(
        name=router.runs_stream, subjects=[f"{router.runs_subject}.>"],
        retention=api.RetentionPolicy.WORK_QUEUE, storage=api.StorageType.FILE,
        # max_age 0 means "keep forever", not "no window": min() would give 0, which nats-server
        # reads as its 2-minute default, and a redelivered event would then record its runs again.
        duplicate_window=min(settings.bus.duplicate_window, settings.bus.max_age or settings.bus.duplicate_window),
        # Never a byte limit: on a work queue it would discard runs that are still waiting.
        max_age=settings.bus.max_age, max_bytes=-1, num_replicas=settings.bus.replicas,
        description="trigger-router: runs waiting to be executed",
    )


class RunStates:
    """Run progress in a KV bucket; the value is a JSON document, the key the run id."""

    def __init__(self, bucket: kv.Bucket) -> None:
        self.bucket = bucket

    @classmethod
    async def open(cls, js: JetStreamContext, settings: Settings) -> "RunStates":
        return cls(await kv.open_bucket(js, settings.router.state_bucket, description="trigger-router: run progress",
                                        what="run state", ttl=settings.bus.max_age, replicas=settings.bus.replicas))

    async def get(self, run: str) -> dict[str, Any] | None:
        entry = await self.bucket.get(run)
        return entry.value if entry else None

    async def entry(self, run: str) -> kv.Entry | None:
        return await self.bucket.get(run)

    async def create(self, run: str, state: dict[str, Any]) -> int | None:
        """Write only if the run has no state yet; its revision, or ``None`` if it has one."""
        return await self.bucket.create(run, state)

    async def write(self, run: str, state: dict[str, Any], revision: int) -> int | None:
        """Compare-and-set: the new revision, or ``None`` if someone wrote since ``revision``."""
        return await self.bucket.update(run, state, revision)

    async def update(self, run: str, **changes: Any) -> dict[str, Any]:
        """Merge ``changes`` into the state with compare-and-set (for commands such as ``runs retry``)."""
        async def merge(current: dict[str, Any] | None) -> dict[str, Any]:
            return {**(current or {"runId": run}), **changes}
        _, state = await self.bucket.mutate(run, merge)
        return state

    async def newest(self, count: int) -> tuple[list[dict[str, Any]], int]:
        """The states written most recently (at most ``count``), latest queued first, and about how
        many states the bucket holds: a bounded read for pages that show history."""
        total, _ = await self.bucket.sequences()
        found = {key: value async for key, value in self.bucket.scan(newest=count) if value}
        return sorted(found.values(), key=lambda s: s.get("queuedAt", 0), reverse=True), total

    async def all(self) -> list[dict[str, Any]]:
        keys = await self.bucket.keys()
        states = await asyncio.gather(*(self.get(key) for key in keys))
        return sorted((s for s in states if s), key=lambda s: s.get("queuedAt", 0))
