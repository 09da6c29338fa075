"""``events tail``, ``events send`` and ``outcomes tail``: short-lived JetStream clients for people at a terminal.

``outcomes tail`` prints one line per outcome in fixed columns (a stream cannot be measured
first): the rule cut to 24 characters and the run id to 12 (``…`` marks a cut), both whole with
``--wide``, which is what to copy a run id from for ``runs show``.
"""

from __future__ import annotations

import json
import sys

from nats.js import api

from router import errors
from router.bus import connection as bus_mod
from router.cli import client
from router.config.settings import Settings
from router.model import events
from router.model.bindings import nats as nats_binding


def format_line(event: events.CloudEvent, as_json: bool, wide: bool = False) -> str:
    if as_json:
        return json.dumps(events.to_json_object(event), ensure_ascii=False)
    attrs = event.attributes
    if event.type.startswith("dev.cdevents.testsuiterun."):
        return _outcome_line(event, wide)
    return "  ".join(str(v) for v in (attrs.get("time", "-"), event.type, event.id, event.source,
                                       attrs.get("subject", "")))


async def tail(settings: Settings, *, subject: str | None, as_json: bool, from_start: bool, count: int,
               outcomes: bool = False, wide: bool = False) -> int:
    nc = await client.connect(settings)
    base = settings.bus.outcomes_subject if outcomes else settings.bus.events_subject
    stream = settings.bus.outcomes_stream if outcomes else settings.bus.events_stream
    policy = api.DeliverPolicy.ALL if from_start else api.DeliverPolicy.NEW
    try:
        sub = await nc.jetstream().subscribe(f"{base}.{subject or '>'}", ordered_consumer=True,
                                             deliver_policy=policy, stream=stream)
        seen = 0
        async for msg in sub.messages:
            try:
                event = nats_binding.from_message(msg.headers, msg.data)
            except errors.BadRequest as exc:
                print(f"# undecodable message on {msg.subject}: {exc.detail}", file=sys.stderr)
                continue
            print(format_line(event, as_json, wide), flush=True)
            seen += 1
            if count and seen >= count:
                break
    finally:
        await nc.close()
    return 0


async def send(settings: Settings, batch: list[events.CloudEvent]) -> int:
    nc = await client.connect(settings)
    bus = bus_mod.Bus(settings.nats, settings.bus)
    bus.nc, bus.js = nc, nc.jetstream()
    try:
        for event, stored in zip(batch, await bus.publish_all(batch)):
            note = " (duplicate, dropped)" if stored.duplicate else ""
            print(f"stored {event.type} {event.id} as {stored.stream}#{stored.seq}{note}")
    finally:
        await nc.close()
    return 0


def _outcome_line(event: events.CloudEvent, wide: bool = False) -> str:
    body = event.json() or {}
    content = body.get("subject", {}).get("content", {})
    custom = body.get("customData", {})
    stage = event.type.split(".")[3]
    rule, run_id = str(custom.get("rule", "-")), str(custom.get("runId", "-"))
    if not wide:
        rule, run_id = _cut(rule, 24).ljust(24), _cut(run_id, 12).ljust(12)
    return "  ".join(str(v) for v in (event.attributes.get("time", "-"), f"{stage:8}", rule, run_id,
                                       content.get("outcome", ""), content.get("reason", "")) if v != "").rstrip()


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"
