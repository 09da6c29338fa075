"""Run leases: an executor carries out a run only while it holds the run's lease.

JetStream redelivers a run message when its executor stops reporting progress for ``ack_wait``:
the process died, or it is alive but cut off from NATS, or paused. Redelivery alone cannot tell
those apart, so without a fence a second executor starts the run while the first still runs it
and both publish a result. The fence is the run-state entry itself:

- **claim**: ``state: running`` with ``worker``, ``lease`` (a token) and ``leaseUntil`` is written
  by compare-and-set on the entry's revision; of two executors racing, one wins, the other sees
  the winner's lease and waits until it expires (``Held``);
- **renew**: every progress report extends ``leaseUntil``, again by compare-and-set. A renewal that
  finds a newer revision means someone else claimed the run: the lease is *lost* and the action is
  cancelled. A renewal that cannot reach NATS until ``leaseUntil`` passes loses it too, because from
  then on another executor may claim the run;
- **finish**: the result is written by compare-and-set with the revision of the last renewal,
  *before* ``finished`` is published. If no one claimed the run in between (the revision is
  unchanged) this succeeds even after an outage longer than the lease: an action that completed is
  never run again only because NATS was away while it ran.

The one remaining window: a process killed *during* an action. Its lease expires and another
executor runs the action again. Actions get the run id (``TRIGGER_ROUTER_RUN_ID``, the Kubernetes Job
name is derived from it) so that they can make that second execution a no-op.

``leaseUntil`` is wall-clock time compared across hosts: clocks must agree to well within
``ack_wait`` (NTP does that; the lease is ``ack_wait``, 30 s by default).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from router import errors
from router.bus import backoff, kv
from router.engine import runs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Held:
    """Another executor holds an unexpired lease: look again in ``wait`` seconds."""

    worker: str
    wait: float


@dataclass(frozen=True)
class Finished:
    """The run's result is already stored: announce it, never run the action again."""

    state: dict[str, Any]


class Lease:
    """One executor's claim on one run, renewed while the action runs."""

    def __init__(self, states: runs.RunStates, run_id: str, state: dict[str, Any], revision: int,
                 duration: float) -> None:
        self.states = states
        self.run_id = run_id
        self.state = state
        self.revision = revision
        self.duration = duration
        self.lost: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        """Completes with the reason when the lease is lost; the action must stop."""

    @property
    def token(self) -> str:
        return self.state["lease"]

    @property
    def until(self) -> float:
        return self.state["leaseUntil"]

    def _lose(self, reason: str) -> None:
        if not self.lost.done():
            log.warning("run %s: lost its lease (%s); stopping the action", self.run_id, reason)
            self.lost.set_result(reason)

    async def renew(self) -> None:
        """Extend the lease; a lost race or an expiry without renewal loses it."""
        if self.lost.done():
            return
        state = {**self.state, "leaseUntil": time.time() + self.duration}
        try:
            revision = await self.states.write(self.run_id, state, self.revision)
        except errors.BusUnavailable as exc:
            if time.time() >= self.until:
                self._lose(f"could not renew it before it expired: {exc.detail}")
            return
        if revision is None:
            entry = await _quietly_read(self.states, self.run_id)
            if entry is not None and entry.value.get("lease") == self.token:
                # An earlier write that timed out on our side reached the server after all (nats-py
                # sends what it buffered during an outage on reconnect): the lease is still ours.
                self.state, self.revision = entry.value, entry.revision
                return
            self._lose(f"claimed by {(entry.value if entry else {}).get('worker', 'another executor')}")
            return
        self.state, self.revision = state, revision

    async def finish(self, changes: dict[str, Any]) -> dict[str, Any] | None:
        """Store the result; the stored state, or ``None`` if another executor claimed the run.

        Retried with backoff while NATS cannot be reached: the result of an action that ran must
        not be dropped for an outage, or the action would run again.
        """
        state = {key: value for key, value in self.state.items() if key not in ("lease", "leaseUntil")}
        state.update(changes, state="finished", finishedBy=self.token)
        retry = backoff.Backoff(0.2, 5.0)
        while True:
            try:
                revision = await self.states.write(self.run_id, state, self.revision)
                entry = await self.states.entry(self.run_id) if revision is None else None
            except errors.BusUnavailable as exc:
                if retry.attempt in (0, 10) or retry.attempt % 50 == 0:
                    log.warning("run %s: cannot store its result yet (%s); retrying", self.run_id, exc.detail)
                await asyncio.sleep(retry.next())
                continue
            if revision is not None:
                self.state, self.revision = state, revision
                return state
            current = entry.value if entry else {}
            if current.get("finishedBy") == self.token:
                return current  # our own earlier attempt landed after its timeout
            if current.get("lease") == self.token and current.get("state") == "running":
                self.revision = entry.revision  # a renewal landed late; the lease is still ours
                continue
            return None


async def claim(states: runs.RunStates, run_id: str, entry_state: dict[str, Any], revision: int, *,
                worker: str, duration: float, deliveries: int) -> Lease | Held | Finished | None:
    """Take the run for ``worker``; ``None`` when the entry changed since it was read (read again)."""
    if entry_state.get("state") == "finished":
        return Finished(entry_state)
    now = time.time()
    holder, until = entry_state.get("worker"), entry_state.get("leaseUntil") or 0.0
    if entry_state.get("state") == "running" and holder != worker and until > now:
        return Held(holder or "another executor", until - now)
    state = {**entry_state, "state": "running", "worker": worker, "lease": uuid.uuid4().hex,
             "leaseUntil": now + duration, "startedAt": now, "deliveries": deliveries}
    if entry_state.get("state") == "running":
        state["takenOver"] = entry_state.get("takenOver", 0) + 1
    written = await states.write(run_id, state, revision)
    if written is None:
        return None
    return Lease(states, run_id, state, written, duration)


async def _quietly_read(states: runs.RunStates, run_id: str) -> kv.Entry | None:
    try:
        return await states.entry(run_id)
    except errors.BusUnavailable:
        return None
