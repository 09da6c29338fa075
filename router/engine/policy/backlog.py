"""Waiting runs per rule: ``policy.maxWaiting`` bounds a rule's backlog as a whole.

A run that waits (delay, debounce, rate limit, its turn in a queue) is a message the executor naks
until it is due. JetStream counts each against the runs consumer's pending window, so one rule with
an unbounded backlog would hold up every other rule's due runs; and a wait longer than
``bus.max_age`` loses the run with its message (``router.rules.policy.check_limits`` refuses such
rules at load). So each rule has a bound, and a run past it is *recorded*: finished ``error``,
``backlog full: N runs of rule R are waiting (policy.maxWaiting M)``, in ``runs list`` and the
outcomes, instead of piling up or vanishing.

Where a policy's key is one for the whole rule (the default), that policy's own entry already counts
the rule's backlog and nothing more is written: a queue's list (``concurrency``), a rate limit's
GCRA backlog (``ratelimit``), and a debounce keeps at most one run waiting. Where a key is
templated, and for ``delay`` (which keeps no entry), the rule's ledger ``waiting.<rule>`` counts
across keys:

- ``due``: waiting runs by the time they become due, in buckets of a 64th of the rule's longest wait
  (at least 1 s), named by the second they end. A bucket is dropped once due, so the count mends
  itself after a crash; a run ended early (debounced, replaced) counts until its due time. A
  debounced event that only replaces a still-waiting run of its key adds nothing.
- ``queues``: per templated queue slot, its waiting runs and the slot's revision, rewritten after
  every claim and release (the newer revision wins, so replicas writing out of order agree). Before
  it refuses a run, the ledger recounts them from the slots themselves, so a count a crashed
  process left behind cannot refuse runs for ever.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

from router.engine.policy.store import NO_CHANGE, PolicyStore

BUCKETS = 64


def ledger(rule: str) -> str:
    return f"waiting.{rule}"


def step(longest: float) -> float:
    """Bucket width for a rule whose runs wait at most ``longest`` seconds."""
    return max(1.0, longest / BUCKETS)


def _end(due: float, width: float) -> str:
    return str(math.ceil(math.ceil(due / width) * width))


def _live(current: dict[str, Any] | None, now: float) -> dict[str, Any]:
    current = current or {}
    return {"due": {end: n for end, n in current.get("due", {}).items() if int(end) > now and n > 0},
            "queues": dict(current.get("queues", {}))}


def total(current: dict[str, Any] | None, now: float, without: str | None = None) -> int:
    """Waiting runs the ledger counts (``without``: leave this queue slot out)."""
    doc = _live(current, now)
    return sum(doc["due"].values()) + sum(n for slot, (n, _) in doc["queues"].items() if slot != without)


def add_due(current: dict[str, Any] | None, due: float, now: float, width: float,
            limit: int) -> tuple[int | None, Any]:
    """(the count that refused this run or ``None``, the new ledger or ``NO_CHANGE``)."""
    count = total(current, now)
    if count >= limit:
        return count, NO_CHANGE
    doc = _live(current, now)
    end = _end(due, width)
    doc["due"][end] = doc["due"].get(end, 0) + 1
    return None, doc


def remove_due(current: dict[str, Any] | None, due: float, now: float, width: float) -> Any:
    doc = _live(current, now)
    end = _end(due, width)
    if end not in doc["due"]:
        return NO_CHANGE
    doc["due"][end] -= 1
    return doc


def set_queue(current: dict[str, Any] | None, slot: str, waiting: int, revision: int) -> Any:
    """The ledger with ``slot`` holding ``waiting`` runs as of ``revision`` (older news: ``NO_CHANGE``)."""
    queues = (current or {}).get("queues", {})
    known = queues.get(slot)
    if known is not None and known[1] >= revision:
        return NO_CHANGE
    if known is None and waiting <= 0:
        return NO_CHANGE
    doc = {"due": dict((current or {}).get("due", {})), "queues": dict(queues)}
    if waiting > 0:
        doc["queues"][slot] = [waiting, revision]
    else:
        del doc["queues"][slot]
    return doc


async def add(store: PolicyStore, rule: str, due: float, now: float, width: float, limit: int) -> int | None:
    """Count one more run of ``rule`` waiting until ``due``; the count that refused it, or ``None``."""
    refused: int | None = None

    async def change(current):
        nonlocal refused
        refused, new = add_due(current, due, now, width, limit)
        return new

    await store.mutate(ledger(rule), change)
    return refused


async def take_back(store: PolicyStore, rule: str, due: float, now: float, width: float) -> None:
    """Undo :func:`add` for a run that was not admitted after all (forbidden, replaced, full)."""
    async def change(current):
        return remove_due(current, due, now, width)

    await store.mutate(ledger(rule), change)


async def track_queue(store: PolicyStore, rule: str, slot: str, waiting: int, revision: int,
                      limit: int | None = None) -> int | None:
    """Record that ``slot`` holds ``waiting`` runs behind its head (as of the slot's ``revision``).

    With ``limit``: refuse instead (nothing written) when the rule would then have more waiting
    runs; returns the count that refused it, after recounting the other slots once."""
    for recounted in (False, True):
        refused: int | None = None

        async def change(current):
            nonlocal refused
            others = total(current, time.time(), without=slot)
            if limit is not None and others + waiting > limit:
                refused = others + waiting
                return NO_CHANGE
            refused = None
            return set_queue(current, slot, waiting, revision)

        await store.mutate(ledger(rule), change)
        if refused is None or recounted:
            return refused
        await recount(store, rule)
    return refused


async def recount(store: PolicyStore, rule: str) -> None:
    """Rewrite every queue slot's count from the slot itself."""
    current, _ = await store.read(ledger(rule))
    slots = list((current or {}).get("queues", {}))
    values = await asyncio.gather(*(store.get(slot) for slot in slots))
    for slot, entry in zip(slots, values):
        waiting = max(len((entry.value or {}).get("runs", [])) - 1, 0) if entry else 0
        revision = entry.revision if entry else current["queues"][slot][1] + 1  # gone: drop it

        async def change(doc, slot=slot, waiting=waiting, revision=revision):
            return set_queue(doc, slot, waiting, revision)

        await store.mutate(ledger(rule), change)
