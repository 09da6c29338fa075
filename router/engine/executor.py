"""The run executor: takes recorded runs off the runs stream and carries them out.

A run message is acknowledged only after its ``finished`` outcome is stored. While an action runs,
the executor tells JetStream it is still working (``in_progress``) every third of ``ack_wait``; if the
process dies, the message is redelivered to another executor after ``ack_wait`` and the run is
carried out again. ``started`` and ``finished`` outcomes have ids derived from the run id, so a
repeated publish is dropped, and a run whose state is already ``finished`` is skipped: exactly one
``finished`` outcome per run.

Run policies are enforced here too (``router.engine.policy.gate``): a run recorded as never to execute
(deduped, forbidden, replaced) is finished as ``cancel`` with its reason; a run not yet due is naked
with the delay; a run cancelled by a newer one has its action task cancelled. A run that ends in
``error`` is kept on the dead-letter stream (``router.engine.deadletters``) for ``runs retry``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from pydantic import ValidationError

from router import errors
from router.bus import backoff, consumers
from router.bus.connection import Bus, subject_token
from router.config.settings import Settings
from router.engine import deadletters, runs
from router.engine.policy import correlation
from router.engine.policy import gate as gate_mod
from router.engine.policy.store import PolicyStore
from router.model import outcomes
from router.plugins import actions as plugin_actions
from router.plugins.catalog import Catalog

log = logging.getLogger(__name__)
WAITING = 10_000
"""Room in ``max_ack_pending`` for runs naked until due (debounce, delay, rate limit, queue):
JetStream counts them as pending, and a full window would stall due runs behind waiting ones."""


class Executor:
    def __init__(self, bus: Bus, settings: Settings, plugins: Catalog, states: runs.RunStates) -> None:
        self.bus = bus
        self.settings = settings
        self.plugins = plugins
        self.states = states
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self.active: set[asyncio.Task] = set()
        self.gate: gate_mod.Gate | None = None
        self.correlator: correlation.Correlator | None = None

    async def open_policies(self) -> None:
        store = await PolicyStore.open(self.bus.js, self.settings)
        self.gate = gate_mod.Gate(store, self.bus.nc, self.settings.router.control_subject)
        self.correlator = correlation.Correlator(store, self.bus, self.settings.router.runs_subject)
        await self.gate.start()

    async def subscribe(self):
        router = self.settings.router
        return await consumers.subscribe(
            self.bus.js, subject=f"{router.runs_subject}.>", stream=router.runs_stream,
            durable=f"{router.durable}-runs", ack_wait=router.ack_wait,
            max_ack_pending=router.concurrency * 4 + WAITING)

    async def run(self) -> None:
        await self.open_policies()
        subscription = await self.subscribe()
        limit = self.settings.router.concurrency
        try:
            while True:
                if len(self.active) >= limit:
                    await asyncio.wait(self.active, return_when=asyncio.FIRST_COMPLETED)
                    continue
                messages = await consumers.fetch(subscription, limit - len(self.active), "runs")
                for msg in messages:
                    task = asyncio.create_task(self.execute(msg))
                    self.active.add(task)
                    task.add_done_callback(self.active.discard)
        finally:
            for task in list(self.active):
                task.cancel()
            await asyncio.gather(*self.active, return_exceptions=True)
            await consumers.unsubscribe(subscription)
            await self.gate.stop()

    async def execute(self, msg: Msg) -> None:
        if msg.subject.startswith(f"{self.settings.router.runs_subject}.{correlation.EXPIRE_TOKEN}."):
            await self._expire(msg)
            return
        try:
            record = runs.RunRecord.loads(msg.data)
        except (ValueError, TypeError) as exc:
            log.error("undecodable run record on %s: %s; terminating it", msg.subject, exc)
            await msg.term()
            return
        state = await self.states.get(record.run_id)
        if state and state.get("state") == "finished":
            await self.gate.release(record)
            await msg.ack()  # finished before a crash lost the ack
            return
        trigger = record.trigger()
        cancelled = self.gate.watch(record)  # before the check, so no cancel request is missed
        heartbeat = asyncio.create_task(self._heartbeat(msg))
        try:
            if state is None:
                await self._announce(record, trigger)
            verdict = await self.gate.check(record)
            if verdict.kind == "wait":
                await msg.nak(delay=verdict.delay)
                return
            if verdict.kind == "end":
                result = outcomes.Result(verdict.outcome, verdict.reason)
                await self._publish("finished", record, trigger, result, 0, 0.0)
                await self.states.update(record.run_id, state="finished", outcome=result.outcome, reason=result.reason,
                                         decision=verdict.label, finishedAt=time.time())
                await self.gate.release(record)
                await msg.ack()
                return
            await self._publish("started", record, trigger)
            started = time.time()
            await self.states.update(record.run_id, state="running", startedAt=started, worker=self.worker,
                                     deliveries=msg.metadata.num_delivered)
            result, attempts = await self._attempts(record, trigger, cancelled)
            duration = time.time() - started
            if result.outcome == "error":
                await deadletters.record_run(self.bus, self.settings, record, result, attempts)
            await self._publish("finished", record, trigger, result, attempts, duration)
            extra = {"decision": "replaced"} if cancelled.done() and result.outcome == "cancel" else {}
            await self.states.update(record.run_id, state="finished", outcome=result.outcome, reason=result.reason,
                                     finishedAt=time.time(), durationSeconds=round(duration, 3),
                                     attempts=attempts, checks=result.checks, **extra)
            await self.gate.release(record)
        except errors.BusUnavailable as exc:
            log.warning("run %s: cannot record progress (%s); it will be retried", record.run_id, exc.detail)
            await msg.nak(delay=2.0)
            return
        finally:
            heartbeat.cancel()
            self.gate.forget(record.run_id)
        await msg.ack()
        log.info("run %s rule=%s event=%s finished: %s %s", record.run_id, record.rule, trigger.id,
                 result.outcome, result.reason)

    async def _attempts(self, record: runs.RunRecord, trigger, cancelled=None) -> tuple[outcomes.Result, int]:
        if record.render_error:
            return outcomes.Result("error", record.render_error), 0
        action = self.plugins.actions.get(record.action)
        if action is None:
            return outcomes.Result("error", f"action {record.action!r} is not available in this router"), 0
        try:
            params = action.params.model_validate(record.params)
        except ValidationError as exc:
            return outcomes.Result("error", f"invalid parameters: {exc.errors()[0]['msg']}"), 0
        context = plugin_actions.Context(record.run_id, record.rule, trigger, record.timeout)
        attempt = 0
        while True:
            attempt += 1
            retryable = False
            try:
                result = await gate_mod.cancellable(asyncio.wait_for(action.run(params, context), record.timeout),
                                                    cancelled)
            except errors.RunCancelled as exc:
                return outcomes.Result("cancel", exc.reason), attempt
            except asyncio.TimeoutError:
                result = outcomes.Result("error", f"timed out after {record.timeout:g}s (policy.timeout)",
                                        severity="high")
            except errors.TemporaryError as exc:
                result, retryable = outcomes.Result("error", f"temporary: {exc}"), True
            except errors.PermanentError as exc:
                result = outcomes.Result("error", str(exc))
            except Exception as exc:  # an action bug must end the run, not the executor
                log.exception("run %s: action %s crashed", record.run_id, record.action)
                result = outcomes.Result("error", f"action crashed: {exc.__class__.__name__}: {exc}")
            if not retryable or attempt > record.retry_limit:
                return result, attempt
            delay = backoff.delay(attempt, record.retry_backoff, record.retry_max_backoff)
            log.info("run %s attempt %d: %s; retrying in %.1fs", record.run_id, attempt, result.reason, delay)
            try:
                await gate_mod.cancellable(asyncio.sleep(delay), cancelled)
            except errors.RunCancelled as exc:
                return outcomes.Result("cancel", exc.reason), attempt

    async def _announce(self, record: runs.RunRecord, trigger) -> None:
        """``queued``: the state bucket entry (create-only) and the testsuiterun.queued outcome."""
        state = {"runId": record.run_id, "rule": record.rule, "action": record.action, "state": "queued",
                 "queuedAt": record.queued_at, "environment": record.environment,
                 "event": {"id": trigger.id, "source": trigger.source, "type": trigger.type}}
        if record.decision:
            state.update(record.decision.get("fields", {}), decision=record.decision.get("label"))
            if record.not_before > record.queued_at:
                state["notBefore"] = record.not_before
        if record.events:
            state["joined"] = {name: {"id": e.get("id"), "type": e.get("type")} for name, e in record.events.items()}
        await self.states.create(record.run_id, state)
        await self._publish("queued", record, trigger)

    async def _publish(self, stage: str, record: runs.RunRecord, trigger, result=None, attempts=0, duration=None):
        event = outcomes.build(stage, run_id=record.run_id, rule=record.rule, action=record.action,
                               environment=record.environment, trigger=trigger, result=result,
                               attempts=attempts, duration=duration)
        await self.bus.publish(event, outcome_subject(self.settings.bus.outcomes_subject, stage, record.rule))

    async def _expire(self, msg: Msg) -> None:
        """A correlation join's expiry timer: not due yet (nak with the rest), or handled (ack)."""
        try:
            delay = await self.correlator.expire(msg.data)
        except errors.BusUnavailable:
            await msg.nak(delay=2.0)
            return
        await (msg.ack() if delay is None else msg.nak(delay=delay))

    async def _heartbeat(self, msg: Msg) -> None:
        interval = max(self.settings.router.ack_wait / 3, 0.5)
        while True:
            await asyncio.sleep(interval)
            try:
                await msg.in_progress()
            except (nats.errors.Error, nats.js.errors.Error) as exc:
                log.debug("in_progress failed: %s", exc)


def outcome_subject(base: str, stage: str, rule: str) -> str:
    """``<outcomes subject>.<stage>.<rule>``: consumers can subscribe to one stage or one rule."""
    return f"{base}.{stage}.{subject_token(rule)}"
