"""Runs: one per (event, rule), recorded durably before the event is acknowledged.

A run's id is a hash of (rule name, event source, event id), so the same event matched by the same
rule always yields the same run id. The run record is a message on the runs work-queue stream,
published with ``Nats-Msg-Id`` = run id: a redelivered event publishes it again and JetStream drops
the copy, which is what makes "a crash before the ack causes redelivery but no second run" true.
The run's progress (queued, running, finished, outcome) is kept in a JetStream KV bucket for
``runs list`` / ``runs show`` and to skip a redelivered run that already finished.
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
    event: dict[str, Any]
    """The triggering event in the JSON format."""
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

    def dumps(self) -> bytes:
        return json.dumps(self.__dict__, separators=(",", ":")).encode()

    @classmethod
    def loads(cls, raw: bytes) -> "RunRecord":
        return cls(**json.loads(raw))

    def trigger(self) -> events.CloudEvent:
        return events.from_json_object(self.event)


def runs_stream_config(settings: Settings) -> api.StreamConfig:
    router = settings.router
    return api.StreamConfig(
        name=router.runs_stream, subjects=[f"{router.runs_subject}.>"],
        retention=api.RetentionPolicy.WORK_QUEUE, storage=api.StorageType.FILE,
        duplicate_window=min(settings.bus.duplicate_window, settings.bus.max_age),
        max_age=settings.bus.max_age, num_replicas=settings.bus.replicas,
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

    async def put(self, run: str, state: dict[str, Any]) -> None:
        await self.bucket.put(run, state)

    async def create(self, run: str, state: dict[str, Any]) -> bool:
        """Write only if the run has no state yet (a redelivered event must not reset progress)."""
        return await self.bucket.create(run, state) is not None

    async def update(self, run: str, **changes: Any) -> dict[str, Any]:
        state = {**(await self.get(run) or {"runId": run}), **changes}
        await self.put(run, state)
        return state

    async def all(self) -> list[dict[str, Any]]:
        keys = await self.bucket.keys()
        states = await asyncio.gather(*(self.get(key) for key in keys))
        return sorted((s for s in states if s), key=lambda s: s.get("queuedAt", 0))
