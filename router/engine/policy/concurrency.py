"""Keyed concurrency: which run holds a key's slot, and how a replaced run is told to stop.

The slot is one policy-bucket entry per (rule, key): ``{"runs": [{"run", "seq"}, ...]}``, ordered by
the triggering event's stream sequence (JetStream's arrival order, the same for every replica):

- ``forbid``: a new run is admitted only if the slot is empty or its holder already finished;
  otherwise it is recorded as ``forbidden`` (outcome cancel) and never executed;
- ``replace``: the new run takes the slot and every holder is asked to cancel; a run whose event is
  *older* than the holder's does not take the slot: it is itself recorded as replaced by the holder;
- ``queue``: runs join the list; the executor starts only the head and releases it when finished.

Cancellation is durable and live at once: a ``cancel.<run id>`` entry in the bucket (checked by
the executor before it starts a run) and a core NATS message on ``<control>.cancel.<run id>``
(every executor subscribes; the one running it cancels the action's task, which kills an ``exec``
process and stops an ``httpProbe`` loop).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import nats.errors

from router.engine import runs
from router.engine.policy.store import NO_CHANGE, PolicyStore

log = logging.getLogger(__name__)


@dataclass
class Claim:
    admitted: bool = True
    decision: str = ""
    """For a run not admitted: ``forbidden`` or ``replaced``."""
    holder: str = ""
    """The run that keeps the slot when this one is not admitted."""
    victims: list[str] = field(default_factory=list)
    """Runs this one replaced (``replace``)."""
    position: int = 0
    """Runs ahead of this one (``queue``)."""


def cancel_key(run_id: str) -> str:
    return f"cancel.{run_id}"


def decide(holders: list[dict[str, Any]], mode: str, run_id: str, seq: int,
           unfinished: set[str] = frozenset()) -> tuple[Claim, Any]:
    """(what happens to run ``run_id`` of the event at ``seq``, the slot's new value or ``NO_CHANGE``).

    ``holders`` is the slot's list; ``unfinished`` the holders whose runs have not finished (only
    ``forbid`` asks, since a finished holder no longer blocks anyone).
    """
    mine = {"run": run_id, "seq": seq}
    if any(h["run"] == run_id for h in holders):
        # A redelivered event: the slot already says what we decided.
        return Claim(position=[h["run"] for h in holders].index(run_id)), NO_CHANGE
    if mode == "replace":
        newer = [h for h in holders if h["seq"] > seq]
        if newer:
            return Claim(False, "replaced", newer[-1]["run"]), NO_CHANGE
        return Claim(victims=[h["run"] for h in holders]), {"runs": [mine]}
    if mode == "forbid":
        for holder in holders:
            if holder["run"] in unfinished:
                return Claim(False, "forbidden", holder["run"]), NO_CHANGE
        return Claim(), {"runs": [mine]}
    queued = sorted([*holders, mine], key=lambda h: h["seq"])
    return Claim(position=queued.index(mine)), {"runs": queued}


async def claim(store: PolicyStore, states: runs.RunStates, slot: str, mode: str, run_id: str, seq: int) -> Claim:
    result = Claim()

    async def change(current: dict[str, Any] | None):
        nonlocal result
        holders = (current or {}).get("runs", [])
        unfinished: set[str] = set()
        if mode == "forbid" and not any(h["run"] == run_id for h in holders):
            for holder in holders:
                state = await states.get(holder["run"])
                if state is None or state.get("state") != "finished":
                    unfinished.add(holder["run"])
                    break  # the first unfinished holder forbids; the rest need not be read
        result, new = decide(holders, mode, run_id, seq, unfinished)
        return new

    await store.mutate(slot, change)
    return result


async def release(store: PolicyStore, slot: str, run_id: str) -> None:
    async def change(current: dict[str, Any] | None):
        holders = (current or {}).get("runs", [])
        if not any(h["run"] == run_id for h in holders):
            return NO_CHANGE
        return {"runs": [h for h in holders if h["run"] != run_id]}

    await store.mutate(slot, change)


async def head(store: PolicyStore, slot: str) -> str | None:
    current, _ = await store.read(slot)
    holders = (current or {}).get("runs", [])
    return holders[0]["run"] if holders else None


async def request_cancel(store: PolicyStore, nc: Any, control_subject: str, run_id: str, reason: str,
                         by: str) -> None:
    await store.put(cancel_key(run_id), {"by": by, "reason": reason, "at": time.time()})
    try:
        await nc.publish(f"{control_subject}.cancel.{run_id}", reason.encode())
    except (nats.errors.Error, AttributeError) as exc:
        # The bucket entry stays: an executor checks it before starting; a running one finishes.
        log.warning("could not signal cancellation of run %s: %s", run_id, exc)


async def cancel_requested(store: PolicyStore, run_id: str) -> str | None:
    signal, _ = await store.read(cancel_key(run_id))
    return signal.get("reason") if signal else None
