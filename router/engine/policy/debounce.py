"""Debounce: run once, for the latest event of a key, after the key has been quiet for a while.

The router records each run with ``not_before = now + debounce`` and writes "latest run of the key"
(the run whose event has the highest stream sequence, so replicas agree on "latest") to the policy
bucket. The executor leaves a run alone until its ``not_before`` (nak with that delay); then, if a
newer run took "latest", this one ends as ``debounced`` without running. The latest run becomes due
``debounce`` after the last event: exactly the quiet period asked for.
"""

from __future__ import annotations

import time
from typing import Any

from router.engine.policy.store import NO_CHANGE, PolicyStore


def latest(current: dict[str, Any] | None, run_id: str, seq: int, now: float) -> Any:
    """The key's new "latest" entry, or ``NO_CHANGE`` when a run of a newer (or the same) event holds it."""
    if current and current.get("seq", 0) >= seq:
        return NO_CHANGE
    return {"run": run_id, "seq": seq, "at": now}


def pending(current: dict[str, Any] | None, seq: int, debounce: float, now: float) -> bool:
    """Whether the event at ``seq`` only replaces a run of its key that is still waiting (or is
    that run, redelivered, or older than it): then it adds no waiting run to the rule."""
    return bool(current) and (current.get("seq", 0) >= seq or current.get("at", 0) + debounce > now)


async def note(store: PolicyStore, slot: str, run_id: str, seq: int) -> None:
    async def change(current: dict[str, Any] | None):
        return latest(current, run_id, seq, time.time())

    await store.mutate(slot, change, order=seq)


async def superseded_by(store: PolicyStore, slot: str, run_id: str) -> str | None:
    latest, _ = await store.read(slot)
    return latest["run"] if latest and latest.get("run") != run_id else None
