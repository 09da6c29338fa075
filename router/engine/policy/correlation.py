"""Correlation: fire a rule once when every required event has arrived for one key in a window.

A partial join is one policy-bucket entry per (rule, key):
``{"id", "key", "started", "expires", "events": {name: {"id", "source", "type", "ref"}}, "fired": run id | null}``.
An event is kept by reference (``ref``: its events-stream name and sequence), never copied: a join
of large webhooks would otherwise outgrow one KV value. The events are fetched when the join fires.
Each matching event is added by compare-and-set, so any replica can complete a join another began,
and a restarted router loses nothing (the entry and the event stream are both durable). The event
that completes the join marks it ``fired`` with a run id derived from the join id, in the same
write; only that event's routing records the run (a redelivery of it records the same run id).

Expiry needs a timer that survives restarts: when a join starts, a timer message goes to the runs
work-queue stream (``<runs subject>.expire.<join id>``) and the executor naks it until the window
ends. Then an unfired join is deleted and, unless ``onExpiry: drop``, an
``event_types.CORRELATION_EXPIRED`` event is published on the events stream naming what arrived and
what never did. A fired join is deleted too, ending the "fires once" window for its key.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass

from typing import Any

from router import errors
from router.bus import stored
from router.bus.connection import Bus
from router.engine.policy.store import NO_CHANGE, PolicyStore, slot
from router.model import event_types, events
from router.rules import policy as spec
from router.rules.loading import Rule

log = logging.getLogger(__name__)
EXPIRE_TOKEN = "expire"


@dataclass(frozen=True)
class Fired:
    run_id: str
    events: dict[str, dict[str, Any]]
    """Each joined event by requirement name: ``id``, ``source``, ``type`` and its ``ref``."""


def _hash(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]


class Correlator:
    def __init__(self, store: PolicyStore, bus: Bus, runs_subject: str) -> None:
        self.store = store
        self.bus = bus
        self.runs_subject = runs_subject

    async def offer(self, rule: Rule, event: events.CloudEvent, where: tuple[str, int]) -> list[Fired]:
        """Add ``event`` to its joins; the joins it completed (or completed before a redelivery)."""
        correlation = rule.correlation
        by_key: dict[str, list[str]] = {}
        for requirement in correlation.require:
            if requirement.filter.matches(event):
                try:
                    key = spec.render_key(requirement.key, event)
                except errors.PermanentError as exc:
                    log.warning("rule %s: event %s has no correlation key for %s: %s", rule.name, event.id,
                                requirement.name, exc)
                    continue
                by_key.setdefault(key, []).append(requirement.name)
        fired = []
        for key, names in by_key.items():
            result = await self._join(rule, event, where, key, names)
            if result:
                fired.append(result)
        return fired

    async def _join(self, rule: Rule, event: events.CloudEvent, ref: tuple[str, int], key: str,
                    names: list[str]) -> Fired | None:
        where, within = slot("join", rule.name, key), rule.correlation.within
        wanted = [r.name for r in rule.correlation.require]
        document = {"id": event.id, "source": event.source, "type": event.type, "ref": list(ref)}

        async def change(current: dict[str, Any] | None):
            now = time.time()
            if current is None or now >= current["expires"]:
                # The start time is in the id: a join re-created after an expiry gets a new timer.
                current = {"id": _hash(rule.name, key, event.source, event.id, repr(now)), "rule": rule.name,
                           "key": key, "started": now, "expires": now + within, "events": {}, "fired": None,
                           "missing": wanted}
            if current["fired"]:
                return NO_CHANGE
            added = [n for n in names if n not in current["events"]]
            if not added:
                return NO_CHANGE
            for name in added:
                current["events"][name] = document
            current["missing"] = [n for n in wanted if n not in current["events"]]
            if not current["missing"]:
                current["fired"] = _hash(rule.name, current["id"], "fired")
            return current

        before, after = await self.store.mutate(where, change)
        if after is None:
            return None
        if before is not None and before["id"] != after["id"] and rule.correlation.publish_expiry:
            await self._expired(rule.name, before)  # an expired join its timer has not reached yet
        if before is None or before["id"] != after["id"]:
            await self._schedule(where, after, rule.correlation.publish_expiry)
        if after["fired"] and any(e.get("id") == event.id and e.get("source") == event.source
                                  for e in after["events"].values()):
            return Fired(after["fired"], after["events"])
        return None

    async def events(self, fired: Fired,
                     current: tuple[tuple[str, int], events.CloudEvent]) -> dict[str, events.CloudEvent]:
        """The joined events themselves, fetched by their references; ``current`` (its reference and
        the event being routed, which completed the join) is used as it is, not read back."""
        found = {}
        for name, kept in fired.events.items():
            if "ref" not in kept:  # a join stored before events were kept by reference
                found[name] = events.from_json_object(kept)
                continue
            where = tuple(kept["ref"])
            event = current[1] if where == current[0] else await stored.event(self.bus.js, *where)
            if event is None:
                log.warning("join %s: event %s (stream %s, sequence %s) is no longer stored; its fields are "
                            "empty in templates", fired.run_id, kept["id"], *where)
                event = events.make({k: kept[k] for k in ("id", "source", "type")})
            found[name] = event
        return found

    async def _schedule(self, where: str, join: dict[str, Any], publish: bool) -> None:
        timer = {"slot": where, "id": join["id"], "rule": join["rule"], "expires": join["expires"],
                 "publish": publish}
        await self.bus.publish_raw(f"{self.runs_subject}.{EXPIRE_TOKEN}.{join['id']}",
                                   json.dumps(timer).encode(), f"expire-{join['id']}")

    async def expire(self, raw: bytes) -> float | None:
        """Handle a timer message: the delay until it is due, or None once handled."""
        timer = json.loads(raw)
        wait = timer["expires"] - time.time()
        if wait > 0:
            return wait
        current, revision = await self.store.read(timer["slot"])
        if current is None or current["id"] != timer["id"]:
            return None
        if not await self.store.delete(timer["slot"], revision):
            return 0.2  # an event was added in between; look again
        if not current["fired"] and timer.get("publish", True):
            await self._expired(timer["rule"], current)
        return None

    async def _expired(self, rule: str, join: dict[str, Any]) -> None:
        if join["fired"]:
            return
        arrived = {name: {"id": e.get("id"), "source": e.get("source"), "type": e.get("type")}
                   for name, e in join["events"].items()}
        summary = f"{' and '.join(arrived) or 'nothing'} but never {' and '.join(join['missing'])}"
        event = events.make(
            {"id": f"{join['id']}-expired", "source": f"/trigger-router/rules/{rule}",
             "type": event_types.CORRELATION_EXPIRED, "subject": join["key"]},
            {"rule": rule, "key": join["key"], "startedAt": join["started"], "expiredAt": join["expires"],
             "arrived": arrived, "missing": join["missing"], "summary": summary},
        )
        await self.bus.publish(event)
        log.info("rule %s: correlation for key %r expired: %s", rule, join["key"], summary)


async def waiting(store: PolicyStore) -> list[dict[str, Any]]:
    """Partial joins, for ``runs list``."""
    joins = await store.entries("join")
    return sorted((j for j in joins.values() if not j.get("fired")), key=lambda j: j["started"])
