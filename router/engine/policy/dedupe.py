"""Dedupe: drop a run whose rendered dedupe key was already run within a window.

This sits on top of the bus's duplicate detection (same CloudEvent ``(source, id)``): it catches
*different* events that mean the same thing (two registries announcing one digest). The first run
of a key owns the window, measured from its routing time; duplicates do not extend it. Once the
window has passed, the next event with that key runs and opens a new window.
"""

from __future__ import annotations

from typing import Any

from router.engine.policy.store import NO_CHANGE, PolicyStore


def decide(current: dict[str, Any] | None, run_id: str, window: float, now: float) -> tuple[str | None, Any]:
    """(the run this one duplicates or ``None``, the key's new entry or ``NO_CHANGE``)."""
    if current and current.get("run") == run_id:
        return None, NO_CHANGE  # a redelivered event: it already owns the window
    if current and now - current.get("at", 0) < window:
        return current["run"], NO_CHANGE
    return None, {"run": run_id, "at": now}


async def claim(store: PolicyStore, slot: str, run_id: str, window: float, now: float) -> str | None:
    """None if this run may go ahead, else the run it duplicates."""
    original: str | None = None

    async def change(current: dict[str, Any] | None):
        nonlocal original
        original, new = decide(current, run_id, window, now)
        return new

    await store.mutate(slot, change)
    return original


async def give_back(store: PolicyStore, slot: str, run_id: str) -> None:
    """End the window ``run_id`` opened, for a run that will not run after all (``backlog full``):
    the next event with the key must not be dropped as a duplicate of work never done."""
    async def change(current: dict[str, Any] | None):
        return {"run": run_id, "at": 0.0} if current and current.get("run") == run_id else NO_CHANGE

    await store.mutate(slot, change)
