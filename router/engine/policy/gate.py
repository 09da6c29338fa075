"""The executor's side of run policies: may this run start now, and stop it when told to.

``check`` runs every time the executor receives a run message, before anything is published:

1. a newer run for the debounce key ends the run as ``debounced`` at once ("latest" only ever moves
   to a newer event, so waiting out its ``not_before`` could not change the answer);
2. a cancel request in the policy bucket (``replace``) ends the run as ``replaced``;
3. a ``not_before`` in the future (debounce, delay, rate limit) naks the message with that delay;
4. in ``queue`` mode, a run that is not the slot's head is naked for ``QUEUE_POLL`` seconds.

While a run executes, ``watch`` hands out a future that a cancel message completes;
``cancellable`` races the action against it and raises ``errors.RunCancelled``. Core NATS messages
can be lost (an executor reconnecting at that moment), so the bucket entry is also polled every
``CANCEL_POLL`` seconds: a lost signal delays a cancellation, never loses it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Literal, TypeVar

from nats.aio.msg import Msg

from router import errors
from router.engine import runs
from router.engine.policy import concurrency, debounce
from router.engine.policy.store import PolicyStore

QUEUE_POLL = 0.5
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


class Gate:
    def __init__(self, store: PolicyStore, nc: Any, control_subject: str) -> None:
        self.store = store
        self.nc = nc
        self.control_subject = control_subject
        self.watching: dict[str, asyncio.Future[str]] = {}
        self._pollers: dict[str, asyncio.Task] = {}
        self._subscription = None

    async def start(self) -> None:
        self._subscription = await self.nc.subscribe(f"{self.control_subject}.cancel.*", cb=self._on_cancel)

    async def stop(self) -> None:
        if self._subscription is not None:
            try:
                await self._subscription.unsubscribe()
            except Exception:  # the connection may already be closing; nothing to clean up then
                pass

    async def _on_cancel(self, msg: Msg) -> None:
        future = self.watching.get(msg.subject.rsplit(".", 1)[1])
        if future is not None and not future.done():
            future.set_result(msg.data.decode() or "cancelled")

    def watch(self, record: runs.RunRecord) -> asyncio.Future[str]:
        future = self.watching[record.run_id] = asyncio.get_running_loop().create_future()
        if record.policy.get("slot"):  # only a run holding a concurrency slot can be replaced
            self._pollers[record.run_id] = asyncio.create_task(self._poll(record.run_id, future))
        return future

    def forget(self, run_id: str) -> None:
        self.watching.pop(run_id, None)
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
        reason = await concurrency.cancel_requested(self.store, record.run_id)
        if reason:
            return Verdict("end", reason=reason, label="replaced")
        wait = record.not_before - time.time()
        if wait > 0.01:
            return Verdict("wait", delay=wait)
        if record.policy.get("mode") == "queue":
            first = await concurrency.head(self.store, record.policy["slot"])
            if first and first != record.run_id:
                return Verdict("wait", delay=QUEUE_POLL)
        return RUN

    async def release(self, record: runs.RunRecord) -> None:
        if record.policy.get("slot"):
            await concurrency.release(self.store, record.policy["slot"], record.run_id)


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
