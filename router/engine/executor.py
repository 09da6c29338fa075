"""The run executor: takes recorded runs off the runs stream and carries them out, once.

A run goes through its state entry (``router.engine.runs``), written by compare-and-set:

1. ``queued``: the first delivery creates the entry and publishes ``testsuiterun.queued``;
2. run policies (``router.engine.policy.gate``): a run recorded as never to execute (deduped,
   forbidden, replaced) is finished as ``cancel`` with its reason; a run not yet due is naked with
   the delay; a run cancelled by a newer one has its action task cancelled;
3. ``running``: the executor claims the run's lease (``router.engine.lease``), publishes ``started``
   and runs the action, renewing the lease and telling JetStream it is still working
   (``in_progress``) every third of ``ack_wait``; losing the lease stops the action;
4. ``finished``: the result is stored in the entry *before* ``finished`` is published, the message
   is acknowledged last. A redelivered run whose result is stored republishes it (same outcome id,
   dropped by JetStream if it was stored already) and never runs the action again.

Every step after the action can fail on a NATS outage: the message is naked and the next delivery
picks up where the last one stopped. A run that ends in ``error`` is kept on the dead-letter stream
(``router.engine.deadletters``) for ``runs retry``. Every nak is logged with its reason: a failure
on the first delivery and every tenth after it, a policy wait once.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import logging
import os
import socket
import time
import uuid

import aiohttp
import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from pydantic import ValidationError

from router import errors
from router.bus import consumers, kv, stored
from router.bus.connection import Bus, subject_token
from router.config import logcontext
from router.config.settings import Settings
from router.engine import deadletters, lease, reports, runs
from router.engine.policy import correlation
from router.engine.policy import gate as gate_mod
from router.engine.policy.store import PolicyStore
from router.model import events, outcomes, tracecontext
from router.plugins import actions as plugin_actions
from router.plugins import attempts
from router.plugins.catalog import Catalog
from router.telemetry import metrics, tracing

log = logging.getLogger(__name__)
WAITING = 10_000
"""Room in ``max_ack_pending`` for runs naked until due (debounce, delay, rate limit, queue):
JetStream counts them as pending, and a full window would stall due runs behind waiting ones."""
NATS_ERRORS = (nats.errors.Error, nats.js.errors.Error, asyncio.TimeoutError)
CAS_ROUNDS = 5
"""Lost compare-and-set races on one run's state before the delivery is naked and retried later."""


class Executor:
    def __init__(self, bus: Bus, settings: Settings, plugins: Catalog, states: runs.RunStates) -> None:
        self.bus = bus
        self.settings = settings
        self.plugins = plugins
        self.states = states
        # The random part tells a restarted process from its predecessor: in a container the
        # host name and the pid (1) are the same after a restart.
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.active: set[asyncio.Task] = set()
        self.running: set[str] = set()
        """Run ids this process is carrying out; a redelivery of one of them is left to that task."""
        self.reports: reports.ReportStates | None = None
        self.gate: gate_mod.Gate | None = None
        self.correlator: correlation.Correlator | None = None
        self.session: aiohttp.ClientSession | None = None
        """Shared by the actions that call one service for many runs (``actions.Context.session``)."""

    async def open_policies(self) -> None:
        store = await PolicyStore.open(self.bus.js, self.settings)
        self.reports = await reports.ReportStates.open(self.bus.js, self.settings)
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
        self.session = aiohttp.ClientSession()
        try:
            await consumers.work(subscription, self.settings.router.concurrency, "runs", self.execute, self.active)
        finally:
            await consumers.unsubscribe(subscription)
            await self.gate.stop()
            await self.session.close()

    @property
    def result_budget(self) -> int:
        """Bytes an action's checks may take: a quarter of a message, the rest for everything else."""
        limit = self.bus.nc.max_payload if self.bus.nc is not None else 1024 * 1024
        return limit // 4

    async def execute(self, msg: Msg) -> None:
        if msg.subject.startswith(f"{self.settings.router.runs_subject}.{correlation.EXPIRE_TOKEN}."):
            await self._expire(msg)
            return
        try:
            record = runs.RunRecord.loads(msg.data)
        except (ValueError, TypeError) as exc:
            log.error("undecodable run record on %s: %s; terminating it", msg.subject, exc)
            await _settle(msg.term())
            return
        if record.run_id in self.running:
            log.info("run %s: redelivered while this process still carries it out; left to that task",
                     record.run_id)
            return
        self.running.add(record.run_id)
        about = record.about()
        logcontext.bind(run_id=record.run_id, rule=record.rule, event_id=about.get("id"),
                        event_type=about.get("type"), trace_id=tracecontext.trace_id(record.traceparent))
        cancelled = self.gate.watch(record)  # before the policy check, so no cancel request is missed
        try:
            await self._execute(msg, record, cancelled)
        except errors.BusUnavailable as exc:
            await self._nak(msg, record.run_id, 2.0, f"cannot record progress: {exc.detail}")
        except errors.PayloadTooLarge as exc:
            # Permanent: no retry can store it. Keep the record for `runs retry` and end the message.
            log.error("run %s: a message of it can never be stored (%s); dead-lettering the run", record.run_id,
                      exc.detail)
            try:
                await deadletters.record_run(self.bus, self.settings, record,
                                             outcomes.Result("error", f"cannot be stored: {exc.detail}"), 0)
            except errors.TriggerRouterError as again:
                log.error("run %s: could not dead-letter it either: %s", record.run_id, again)
            await _settle(msg.term())
        except Exception as exc:  # a bug must not leave the message unsettled until ack_wait, silently
            log.exception("run %s: executor failed", record.run_id)
            await self._nak(msg, record.run_id, 5.0, f"executor failed: {exc.__class__.__name__}: {exc}")
        finally:
            self.running.discard(record.run_id)
            self.gate.forget(record.run_id)

    async def _execute(self, msg: Msg, record: runs.RunRecord, cancelled: asyncio.Future[str]) -> None:
        loaded: tuple[events.CloudEvent, str | None] | None = None

        async def trigger() -> events.CloudEvent:
            """Read (a referenced event: fetched) only when used, not on every policy-wait delivery."""
            nonlocal loaded
            loaded = loaded or await self._trigger(record)
            return loaded[0]

        created: kv.Entry | None = None
        if msg.metadata.num_delivered == 1:  # a first delivery's state is still to be made: no read first
            created = await self._announce(record, await trigger())
        for _ in range(CAS_ROUNDS):
            entry, created = created or await self.states.entry(record.run_id), None
            if entry is None:
                created = await self._announce(record, await trigger())  # what it wrote: no read back
                continue
            state, revision = entry.value or {}, entry.revision
            if state.get("state") == "finished":
                await self._conclude(msg, record, await trigger(), state)
                return
            verdict = await self.gate.check(record)
            if verdict.kind == "wait":
                await self._nak(msg, record.run_id, verdict.delay, "waiting for its run policy", expected=True)
                return
            if verdict.kind == "end":
                ended = {**state, "state": "finished", "outcome": verdict.outcome, "reason": verdict.reason,
                         "decision": verdict.label, "finishedAt": time.time()}
                if await self.states.write(record.run_id, ended, revision) is not None:
                    metrics.run_finished(record.rule, record.action, verdict.outcome, None)
                    await self._conclude(msg, record, await trigger(), ended)
                    return
                continue
            claimed = await lease.claim(self.states, record.run_id, state, revision, worker=self.worker,
                                        duration=self.settings.router.ack_wait,
                                        deliveries=msg.metadata.num_delivered)
            if isinstance(claimed, lease.Finished):
                await self._conclude(msg, record, await trigger(), claimed.state)
                return
            if isinstance(claimed, lease.Held):
                await self._nak(msg, record.run_id, claimed.wait + 0.5, f"its lease is held by {claimed.worker}")
                return
            if isinstance(claimed, lease.Lease):
                await trigger()
                await self._carry_out(msg, record, *loaded, claimed, cancelled)
                return
        raise errors.BusUnavailable(f"run state changed {CAS_ROUNDS} times while deciding")

    async def _carry_out(self, msg: Msg, record: runs.RunRecord, trigger: events.CloudEvent, missing: str | None,
                         held: lease.Lease, cancelled: asyncio.Future[str]) -> None:
        def stop(lost: asyncio.Future[str]) -> None:
            if not cancelled.done():
                cancelled.set_result(f"lost the run's lease: {lost.result()}")
        held.lost.add_done_callback(stop)
        heartbeat = asyncio.create_task(self._heartbeat(msg, held))
        try:
            if msg.metadata.num_delivered > 1:  # an earlier delivery may have died before announcing it
                await self._publish("queued", record, trigger)
            await self._publish("started", record, trigger)
            if missing:
                result, attempts = outcomes.Result("error", missing), 0
            else:
                span = tracing.run_span(record.run_id, record.rule, record.action, record.about(), record.traceparent)
                result, attempts = await self._attempts(record, trigger, cancelled, span.traceparent)
                span.end(result.outcome, result.reason, attempts)
            if held.lost.done():
                log.warning("run %s: action stopped (%s); the run is left to its new holder",
                            record.run_id, held.lost.result())
                return
            duration = time.time() - held.state["startedAt"]
            result = outcomes.bound(result, self.result_budget)
            changes = {"outcome": result.outcome, "reason": result.reason, "severity": result.severity,
                       "finishedAt": time.time(), "durationSeconds": round(duration, 3), "attempts": attempts,
                       "checks": result.checks, "executed": True}
            if cancelled.done() and result.outcome == "cancel":
                changes["decision"] = "replaced"
            stored = await held.finish(changes)
            if stored is not None:
                metrics.run_finished(record.rule, record.action, result.outcome, duration)
        finally:
            heartbeat.cancel()
        if stored is None:
            log.warning("run %s: claimed by another executor before its result (%s) was stored; "
                        "this result is discarded", record.run_id, result.outcome)
            return
        await self._conclude(msg, record, trigger, stored)

    async def _conclude(self, msg: Msg, record: runs.RunRecord, trigger: events.CloudEvent,
                        state: dict) -> None:
        """Announce a stored result: dead letter, ``finished``, policy release, ack. Safe to repeat."""
        result = outcomes.Result(state.get("outcome", "error"), state.get("reason", ""), state.get("checks") or [],
                                 state.get("severity"))
        if result.outcome == "error" and state.get("executed"):
            await deadletters.record_run(self.bus, self.settings, record, result, state.get("attempts", 0))
        finished_at = datetime.datetime.fromtimestamp(state.get("finishedAt") or time.time(), datetime.timezone.utc)
        timestamp = finished_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        try:
            await self._publish("finished", record, trigger, result, state.get("attempts", 0),
                                state.get("durationSeconds", 0.0), timestamp)
        except errors.PayloadTooLarge as exc:
            log.error("run %s: finished outcome too large (%s); published without its checks", record.run_id,
                      exc.detail)
            bare = outcomes.Result(result.outcome, result.reason[:1000], [], result.severity)
            await self._publish("finished", record, trigger, bare, state.get("attempts", 0),
                                state.get("durationSeconds", 0.0), timestamp)
        await self.gate.release(record)
        await _settle(msg.ack())
        log.info("run %s rule=%s event=%s finished: %s %s", record.run_id, record.rule, trigger.id,
                 result.outcome, result.reason,
                 extra={"outcome": result.outcome, "duration_s": state.get("durationSeconds")})

    async def _trigger(self, record: runs.RunRecord) -> tuple[events.CloudEvent, str | None]:
        """The triggering event, fetched when the record refers to it; with an error if it is gone."""
        if record.event is not None:
            return record.trigger(), None
        stream, sequence = record.event_ref
        found = await stored.event(self.bus.js, stream, sequence)
        if found is None:
            about = record.about()
            return (events.make({k: about.get(k) or "unknown" for k in ("id", "source", "type")}),
                    f"the triggering event (stream {stream}, sequence {sequence}) is no longer stored")
        return found, None

    async def _nak(self, msg: Msg, run_id: str, delay: float, reason: str, expected: bool = False) -> None:
        """Nak with a log line: a failure on the 1st, 11th, 21st… delivery; a policy wait on the 1st."""
        delivered = msg.metadata.num_delivered
        if expected:
            log.log(logging.INFO if delivered == 1 else logging.DEBUG, "run %s %s; due in %.1fs", run_id, reason, delay)
        else:
            log.log(logging.WARNING if delivered % 10 == 1 else logging.DEBUG,
                    "run %s (delivery %d) %s; retrying in %.1fs", run_id, delivered, reason, delay)
        await _settle(msg.nak(delay=delay))

    async def _attempts(self, record: runs.RunRecord, trigger, cancelled=None,
                        traceparent: str | None = None) -> tuple[outcomes.Result, int]:
        if record.render_error:
            return outcomes.Result("error", record.render_error), 0
        action = self.plugins.actions.get(record.action)
        if action is None:
            return outcomes.Result("error", f"action {record.action!r} is not available in this router"), 0
        try:
            params = action.params.model_validate(record.params)
        except ValidationError as exc:
            return outcomes.Result("error", f"invalid parameters: {exc.errors()[0]['msg']}"), 0
        context = plugin_actions.Context(record.run_id, record.rule, trigger, record.timeout, traceparent,
                                         joined=await self._joined(record), publish=self.bus.publish,
                                         session=self.session)
        return await attempts.attempt(action.run, record.action, params, context, retry_limit=record.retry_limit,
                                      retry_backoff=record.retry_backoff, retry_max_backoff=record.retry_max_backoff,
                                      guard=functools.partial(gate_mod.cancellable, cancelled=cancelled))

    async def _joined(self, record: runs.RunRecord) -> dict[str, events.CloudEvent]:
        """A correlated run's joined events, read back by reference (a summary if no longer stored)."""
        joined = {}
        for name, kept in (record.events or {}).items():
            found = await stored.event(self.bus.js, *kept["ref"]) if kept.get("ref") else None
            joined[name] = found or events.make({k: kept.get(k) or "unknown" for k in ("id", "source", "type")})
        return joined

    async def _announce(self, record: runs.RunRecord, trigger) -> kv.Entry | None:
        """``queued``: the state bucket entry (create-only) and the testsuiterun.queued outcome; the
        entry written, or None when another delivery had created it."""
        state = {"runId": record.run_id, "rule": record.rule, "action": record.action, "state": "queued",
                 "queuedAt": record.queued_at, "environment": record.environment,
                 "event": record.about()}
        if record.stored_at:
            state["eventRef"] = record.stored_at
        if record.traceparent:
            state["traceparent"] = record.traceparent
        if record.decision:
            state.update(record.decision.get("fields", {}), decision=record.decision.get("label"))
            if record.not_before > record.queued_at:
                state["notBefore"] = record.not_before
        if record.events:
            state["joined"] = {name: {"id": e.get("id"), "type": e.get("type")} for name, e in record.events.items()}
        if record.report:  # before the state: a run with a state and reporters always has its plan
            await self.reports.plan(record.run_id, reports.entry_for(record))
        revision = await self.states.create(record.run_id, state)
        if revision is None:
            return None  # another delivery created it first: read it back
        await self._publish("queued", record, trigger)
        return kv.Entry(state, revision)

    async def _publish(self, stage: str, record: runs.RunRecord, trigger, result=None, attempts=0, duration=None,
                       timestamp: str | None = None):
        event = outcomes.build(stage, run_id=record.run_id, rule=record.rule, action=record.action,
                               environment=record.environment, trigger=trigger, result=result,
                               attempts=attempts, duration=duration, timestamp=timestamp)
        await self.bus.publish(event, outcome_subject(self.settings.bus.outcomes_subject, stage, record.rule),
                               {reports.HEADER: "1" if record.report else "0"})
        if stage == "finished" and self.settings.router.route_outcomes:
            # After the outcomes stream: a crash in between publishes both again, same id, stored once each.
            await self.bus.publish(event)

    async def _expire(self, msg: Msg) -> None:
        """A correlation join's expiry timer: not due yet (nak with the rest), or handled (ack)."""
        try:
            delay = await self.correlator.expire(msg.data)
        except errors.BusUnavailable as exc:
            await self._nak(msg, f"timer {msg.subject}", 2.0, f"cannot expire its join: {exc.detail}")
            return
        await _settle(msg.ack() if delay is None else msg.nak(delay=delay))

    async def _heartbeat(self, msg: Msg, held: lease.Lease) -> None:
        """Progress: ``in_progress`` for JetStream and a lease renewal, every third of ``ack_wait``."""
        interval = max(self.settings.router.ack_wait / 3, 0.5)
        while not held.lost.done():
            await asyncio.sleep(interval)
            try:
                await msg.in_progress()
            except NATS_ERRORS as exc:
                log.debug("in_progress failed: %s", exc)
            await held.renew()


async def _settle(reply) -> None:
    """Ack, nak or term; a reply lost with the connection only means a redelivery, which is handled."""
    try:
        await reply
    except NATS_ERRORS as exc:
        log.debug("could not settle a run message: %s", exc)


def outcome_subject(base: str, stage: str, rule: str) -> str:
    """``<outcomes subject>.<stage>.<rule>``: consumers can subscribe to one stage or one rule."""
    return f"{base}.{stage}.{subject_token(rule)}"
