"""The executor's side of run policies: may this run start now, and stop it when told to.

``check`` runs every time the executor receives a run message, before anything is published:

1. a newer run for the debounce key ends the run as ``debounced`` at once ("latest" only ever moves
   to a newer event, so waiting out its ``not_before`` could not change the answer);
2. a cancel request in the policy bucket (``replace`` only) ends the run as ``replaced``;
3. a ``not_before`` in the future (debounce, delay, rate limit) naks the message with that delay;
4. in ``queue`` mode, the slot's head runs. The next ``QUEUE_HOLD`` runs are held right here (at
   most ``max_held`` per process, for ``HOLD_FOR`` seconds: the executor sends no progress while it
   checks) until a release wakes them: every release publishes the queue's new head on
   ``<control>.queue``, so the next run starts as soon as the previous one is released, not a poll
   later. Runs further back are naked until about when they will be near the head (their position
   times the queue's ``pace``, between ``QUEUE_MIN_WAIT`` and ``QUEUE_MAX_WAIT``; ``QUEUE_POLL``
   while the pace is unknown), so a queue of 1,000 is not polled by 1,000 runs twice a second
   (bench/policy.py: about ten reads per run for 1,000 fast runs on one key).

While a run executes, ``watch`` hands out a future that a cancel message completes;
``cancellable`` races the action against it and raises ``errors.RunCancelled``. Core NATS messages
can be lost (an executor reconnecting at that moment), so the bucket entry is also polled every
``CANCEL_POLL`` seconds: a lost signal delays a cancellation, never loses it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Literal, TypeVar

import nats.errors
from nats.aio.msg import Msg

from router import errors
from router.engine import runs
from router.engine.policy import backlog, concurrency, debounce
from router.engine.policy.store import PolicyStore

log = logging.getLogger(__name__)
QUEUE_POLL = 0.5
QUEUE_HOLD = 4
MAX_HELD = 8
HOLD_FOR = 2.0
WAKE_TIMEOUT = 1.0
"""A held run reads the slot itself when no wake came for this long (a lost core NATS message)."""
QUEUE_EARLY = 0.5
QUEUE_MIN_WAIT = 0.02
QUEUE_MAX_WAIT = 30.0
CANCEL_POLL = 5.0
T = TypeVar("T")


@dataclass(frozen=True)
class Verdict:
    kind: Literal["run", "wait", "end"]
    delay: float = 0.0
    reason: str = ""
    label: str = ""
    outcome: str = "cancel"


RUN = Verdict("run")


def queue_wait(position: int, queue: concurrency.Queue) -> float:
    """Seconds a run ``position`` places behind the head waits before it looks again.

    With a measured pace: half the time until it is among the held runs, so it is early rather
    than late even when the queue goes twice as fast as measured (a head still waiting out its nak
    stalls the queue). Before that: a
    poll, slower the longer the first head takes, so a long first run is not polled by a thousand
    runs twice a second."""
    if queue.pace is None:
        return min(QUEUE_MAX_WAIT, max(QUEUE_POLL, queue.head_for / 2))
    ahead = position - QUEUE_HOLD if position > QUEUE_HOLD else 0.5 * position
    return min(QUEUE_MAX_WAIT, max(QUEUE_MIN_WAIT, QUEUE_EARLY * ahead * queue.pace))


class Gate:
    def __init__(self, store: PolicyStore, nc: Any, control_subject: str, max_held: int = MAX_HELD) -> None:
        self.store = store
        self.max_held = max_held
        """Queue runs held at once; each takes one of the executor's ``router.concurrency`` slots, so
        keep it well below that (the default suits the default concurrency, 16)."""
        self.nc = nc
        self.control_subject = control_subject
        self.watching: dict[str, asyncio.Future[str]] = {}
        self._pollers: dict[str, asyncio.Task] = {}
        self._subscriptions: list[Any] = []
        self._wakes: dict[str, set[asyncio.Future[list[str]]]] = {}
        """Held queue runs by slot: completed with the slot's first runs when it is released."""
        self.held = 0
        self._woken: set[str] = set()
        """Queue heads this process started the moment the previous head left (``flowing``)."""

    async def start(self) -> None:
        self._subscriptions = [
            await self.nc.subscribe(f"{self.control_subject}.cancel.*", cb=self._on_cancel),
            await self.nc.subscribe(f"{self.control_subject}.queue", cb=self._on_release),
        ]

    async def stop(self) -> None:
        for subscription in self._subscriptions:
            try:
                await subscription.unsubscribe()
            except Exception:  # the connection may already be closing; nothing to clean up then
                pass
        self._subscriptions = []

    async def _on_release(self, msg: Msg) -> None:
        try:
            news = json.loads(msg.data)
            slot, first = news["slot"], list(news["runs"])
        except (ValueError, KeyError, TypeError):
            return
        for future in self._wakes.pop(slot, ()):
            if not future.done():
                future.set_result(first)

    def _wake_on(self, slot: str) -> asyncio.Future[list[str]]:
        future = asyncio.get_running_loop().create_future()
        self._wakes.setdefault(slot, set()).add(future)
        return future

    def _unwake(self, slot: str, future: asyncio.Future[list[str]]) -> None:
        waiting = self._wakes.get(slot)
        if waiting is not None:
            waiting.discard(future)
            if not waiting:
                del self._wakes[slot]

    async def _on_cancel(self, msg: Msg) -> None:
        future = self.watching.get(msg.subject.rsplit(".", 1)[1])
        if future is not None and not future.done():
            future.set_result(msg.data.decode() or "cancelled")

    def watch(self, record: runs.RunRecord) -> asyncio.Future[str]:
        future = self.watching[record.run_id] = asyncio.get_running_loop().create_future()
        if record.policy.get("mode") == "replace":  # only a run of a replace slot can be replaced
            self._pollers[record.run_id] = asyncio.create_task(self._poll(record.run_id, future))
        return future

    def forget(self, run_id: str) -> None:
        self.watching.pop(run_id, None)
        self._woken.discard(run_id)
        poller = self._pollers.pop(run_id, None)
        if poller is not None:
            poller.cancel()

    async def _poll(self, run_id: str, future: asyncio.Future[str]) -> None:
        while not future.done():
            await asyncio.sleep(CANCEL_POLL)
            try:
                reason = await concurrency.cancel_requested(self.store, run_id)
            except errors.BusUnavailable:
                continue
            if reason and not future.done():
                future.set_result(reason)

    async def check(self, record: runs.RunRecord) -> Verdict:
        decision = record.decision or {}
        if not decision.get("run", True):
            return Verdict("end", reason=decision.get("reason", ""), label=decision.get("label", ""),
                           outcome=decision.get("outcome", "cancel"))
        if not record.policy and not record.not_before:
            return RUN
        if latest := record.policy.get("latest"):
            newer = await debounce.superseded_by(self.store, latest, record.run_id)
            if newer:
                return Verdict("end", reason=f"debounced by run {newer}", label="debounced")
        mode = record.policy.get("mode")
        if mode == "replace":
            reason = await concurrency.cancel_requested(self.store, record.run_id)
            if reason:
                return Verdict("end", reason=reason, label="replaced")
        wait = record.not_before - time.time()
        if wait > 0.01:
            return Verdict("wait", delay=wait)
        if mode == "queue":
            return await self._turn(record.policy["slot"], record.run_id)
        return RUN

    async def _turn(self, slot: str, run_id: str) -> Verdict:
        """``RUN`` for the queue's head (or a run in no queue); else hold the next few, nak the rest."""
        held, until = False, time.monotonic() + HOLD_FOR
        wake = self._wake_on(slot)  # before reading, so a release in between is not missed
        try:
            queue = await concurrency.queue(self.store, slot)
            order = queue.order
            while True:
                if not order or order[0] == run_id:
                    if held:
                        self._woken.add(run_id)
                    return RUN
                position = order.index(run_id) if run_id in order else len(order)
                if position > QUEUE_HOLD or time.monotonic() > until or (not held and self.held >= self.max_held):
                    return Verdict("wait", delay=queue_wait(position, queue))
                if not held:
                    held, self.held = True, self.held + 1
                done, _ = await asyncio.wait({wake}, timeout=WAKE_TIMEOUT)
                first = wake.result() if done else None
                self._unwake(slot, wake)
                wake = self._wake_on(slot)
                if first and run_id in first:
                    order = first  # the release said where this run stands: no read needed
                else:
                    queue = await concurrency.queue(self.store, slot)
                    order = queue.order
        finally:
            self._unwake(slot, wake)
            if held:
                self.held -= 1

    async def release(self, record: runs.RunRecord) -> None:
        where = record.policy.get("slot")
        if not where:
            return
        flowing = record.run_id in self._woken
        self._woken.discard(record.run_id)
        left = await concurrency.release(self.store, where, record.run_id, record.seq, flowing)
        if left is None or record.policy.get("mode") != "queue":
            return
        if record.policy.get("ledger"):
            entry = self.store.known(where)
            await backlog.track_queue(self.store, record.rule, where, max(len(left) - 1, 0),
                                      entry.revision if entry else 0)
        news = json.dumps({"slot": where, "runs": left[:QUEUE_HOLD + 1]}).encode()
        try:
            await self.nc.publish(f"{self.control_subject}.queue", news)
        except (nats.errors.Error, AttributeError) as exc:
            # Held runs read the slot after WAKE_TIMEOUT; the others come back on their own.
            log.debug("could not announce the release of run %s: %s", record.run_id, exc)


async def cancellable(work: Awaitable[T], cancelled: asyncio.Future[str] | None) -> T:
    """``work``'s result, unless ``cancelled`` completes first: then ``work`` is cancelled."""
    task = asyncio.ensure_future(work)
    if cancelled is None:
        return await task
    try:
        await asyncio.wait({task, cancelled}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if task.done():
        return task.result()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    raise errors.RunCancelled(cancelled.result())
