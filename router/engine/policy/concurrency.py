"""Keyed concurrency: which run holds a key's slot, and how a replaced run is told to stop.

The slot is one policy-bucket entry per (rule, key): ``{"runs": [{"run", "seq"}, ...]}``, ordered by
the triggering event's stream sequence (JetStream's arrival order, the same for every replica):

- ``forbid``: a new run is admitted only if the slot is empty or its holder already finished;
  otherwise it is recorded as ``forbidden`` (outcome cancel) and never executed;
- ``replace``: the new run takes the slot and every holder is asked to cancel; a run whose event is
  *older* than the holder's does not take the slot: it is itself recorded as replaced by the holder;
- ``queue``: runs join the list behind the head (which may be running), in stream order; the
  executor starts only the head and releases it when finished.
  A queue holds at most ``policy.maxWaiting`` runs behind its head; one more is not admitted
  (``backlog-full``). The slot also keeps the queue's ``pace`` (seconds from one head to the next
  while the queue flows, a moving average), so a run far back knows when to look again (``gate``).

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
    waiting: int = 0
    """Runs in the slot behind its head, this one included (``queue``)."""


def cancel_key(run_id: str) -> str:
    return f"cancel.{run_id}"


PACE_WEIGHT = 0.2
"""Weight of the newest interval in a queue's ``pace``."""
PACE_GROWTH = 1.5
"""The most one interval counts for, as a multiple of the pace so far."""
PACE_SAMPLES = 8
"""Intervals measured before the pace is used: the first ones, while the routers and executors
are still busy with the burst, can be many times the queue's real pace."""


def decide(holders: list[dict[str, Any]], mode: str, run_id: str, seq: int,
           unfinished: set[str] = frozenset(), limit: int | None = None) -> tuple[Claim, Any]:
    """(what happens to run ``run_id`` of the event at ``seq``, the slot's new runs or ``NO_CHANGE``).

    ``holders`` is the slot's list; ``unfinished`` the holders whose runs have not finished (only
    ``forbid`` asks, since a finished holder no longer blocks anyone); ``limit``: the most runs a
    ``queue`` may hold behind its head (``None``: no limit here).
    """
    mine = {"run": run_id, "seq": seq}
    if any(h["run"] == run_id for h in holders):
        # A redelivered event: the slot already says what we decided.
        return Claim(position=[h["run"] for h in holders].index(run_id), waiting=len(holders) - 1), NO_CHANGE
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
    if limit is not None and len(holders) > limit:
        return Claim(False, "backlog-full", holders[0]["run"], waiting=len(holders) - 1), NO_CHANGE
    # The head may be running already: an older event routed late (by another router, or
    # redelivered) queues first behind it, never ahead of it, so runs never overlap.
    queued = holders[:1] + sorted([*holders[1:], mine], key=lambda h: h["seq"])
    return Claim(position=queued.index(mine), waiting=len(queued) - 1), {"runs": queued}


def released(current: dict[str, Any] | None, run_id: str, now: float, flowing: bool = False) -> Any:
    """The slot without ``run_id`` (``NO_CHANGE`` if it is not there), its queue's pace updated.

    ``since`` is when the previous head left. ``flowing``: this run was waiting at the front and
    started the moment that happened (``gate`` held it); then ``now - since`` is one run of a queue
    that flows, and goes into the moving average ``pace`` (counting at most ``PACE_GROWTH`` times
    the pace so far, so one slow run moves it little). Runs far back look again after about their
    position times the pace, so a pace too slow makes them late; a late head stalls the queue, and
    measuring stalls too would make the pace slower still. A pace too fast only costs them an extra
    look. ``samples`` counts the measurements. ``head`` is when the current head got the slot. An empty slot forgets it all, so
    yesterday's runs say nothing about today's."""
    holders = (current or {}).get("runs", [])
    if not any(h["run"] == run_id for h in holders):
        return NO_CHANGE
    rest = [h for h in holders if h["run"] != run_id]
    if not rest:
        return {"runs": []}
    new = {**current, "runs": rest}
    if holders[0]["run"] == run_id:
        new["since"] = new["head"] = now
        if flowing and "since" in current:
            interval, pace = max(now - current["since"], 0.0), current.get("pace")
            if pace is None:
                new["pace"] = interval
            else:
                new["pace"] = (1 - PACE_WEIGHT) * pace + PACE_WEIGHT * min(interval, PACE_GROWTH * pace)
            new["samples"] = current.get("samples", 0) + 1
    return new


@dataclass(frozen=True)
class Queue:
    """A queue slot as a waiting run sees it."""

    order: list[str]
    """Run ids, head first."""
    pace: float | None
    """Seconds from one head to the next (``None``: not measured ``PACE_SAMPLES`` times yet)."""
    head_for: float
    """Seconds the current head has held the slot (0 if unknown)."""


def queue_of(current: dict[str, Any] | None, now: float) -> Queue:
    current = current or {}
    measured = current.get("samples", 0) >= PACE_SAMPLES
    return Queue([h["run"] for h in current.get("runs", [])], current.get("pace") if measured else None,
                 max(now - current["head"], 0.0) if "head" in current else 0.0)


async def claim(store: PolicyStore, states: runs.RunStates, slot: str, mode: str, run_id: str, seq: int,
                limit: int | None = None) -> Claim:
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
        result, new = decide(holders, mode, run_id, seq, unfinished, limit)
        if new is NO_CHANGE:
            return NO_CHANGE
        if mode == "queue" and not holders:
            return {**new, "head": time.time()}  # this run is the head from now
        return {**(current or {}), **new}  # keeps the pace

    await store.mutate(slot, change, order=seq)
    return result


async def release(store: PolicyStore, slot: str, run_id: str, seq: int = 0,
                  flowing: bool = False) -> list[str] | None:
    """Leave the slot (``flowing``: see :func:`released`); the runs still in it, in order
    (``None``: this run was not in it)."""
    async def change(current: dict[str, Any] | None):
        return released(current, run_id, time.time(), flowing)

    before, after = await store.mutate(slot, change, order=seq)
    if after is before:
        return None
    return [h["run"] for h in after["runs"]]


async def queue(store: PolicyStore, slot: str) -> Queue:
    current, _ = await store.read(slot)
    return queue_of(current, time.time())


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
