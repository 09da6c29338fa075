"""Dedupe: drop a run whose rendered dedupe key was already run within a window.

This sits on top of the bus's duplicate detection (same CloudEvent ``(source, id)``): it catches
*different* events that mean the same thing (two registries announcing one digest). The first run
of a key owns the window, measured from its routing time; duplicates do not extend it. Once the
window has passed, the next event with that key runs and opens a new window.
"""

from __future__ import annotations

from typing import Any

from router.engine.policy.store import NO_CHANGE, PolicyStore


async def claim(store: PolicyStore, slot: str, run_id: str, window: float, now: float) -> str | None:
    """None if this run may go ahead, else the run it duplicates."""
    original: str | None = None

    async def change(current: dict[str, Any] | None):
        nonlocal original
        original = None
        if current and current.get("run") == run_id:
            return NO_CHANGE
        if current and now - current.get("at", 0) < window:
            original = current["run"]
            return NO_CHANGE
        return {"run": run_id, "at": now}

    await store.mutate(slot, change)
    return original
