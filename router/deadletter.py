"""Items of a delivery that cannot be ingested, kept with the reason instead of refusing the batch.

Registries that send several events per request (the distribution registry's notification envelope)
retry the whole request until it is answered 2xx, and block their queue meanwhile. Refusing a batch
because one item is malformed would retry it forever; publishing it without the bad item would lose
it silently. So a source returns a :class:`Rejected` for such an item, the HTTP edge stores it on
``<bus.deadletter_subject>.ingest`` (one CloudEvent of type ``event_types.INGEST_REJECTED`` whose data
names the source, the delivery, the reason and the item), and answers 2xx once everything is stored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from router import cdevents, event_types, events


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: str
    item: Any
    field: str | None = None
    index: int | None = None
    """Position of the item in the delivery."""


def subject(deadletter_subject: str) -> str:
    return f"{deadletter_subject}.ingest"


def to_event(source_name: str, delivery_id: str, rejected: Rejected) -> events.CloudEvent:
    """Deterministic id: a redelivered batch dead-letters the same item once."""
    item = json.dumps(rejected.item, sort_keys=True, separators=(",", ":"), default=str)
    event_id = cdevents.deterministic_id("rejected", source_name, delivery_id, str(rejected.index), item)
    return events.make(
        {"id": event_id, "source": f"/webhooks/{source_name}", "type": event_types.INGEST_REJECTED,
         "time": cdevents.now()},
        {"source": source_name, "delivery": delivery_id, "index": rejected.index,
         "reason": rejected.reason, "field": rejected.field, "item": rejected.item},
    )
