"""The event consumer: events in, runs recorded, events acknowledged.

Several router processes share one durable pull consumer, so each event is handled by one of them.
An event is acknowledged only after every run it produced is durably recorded as a message on the
runs work-queue stream. That message is the run's record: the executor that takes it announces
``queued`` and ``started``. A crash before the ack means redelivery, and redelivery means the same
run ids, which JetStream's duplicate window turns into no-ops. One write per run keeps the hot path
short (see bench/route.py). An event that cannot be
decoded goes to the dead-letter stream with the reason and is terminated, never redelivered forever.

Rules with run policies cost more than that one write: before the run message is published,
``router.engine.policy.admission`` decides (in the shared policy bucket) whether the run is deduped,
forbidden or replaced, and when it may start; a ``correlate`` rule first adds the event to its join
(``router.engine.policy.correlation``) and records a run only when the join completes.
"""

from __future__ import annotations

import asyncio
import logging

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg

from router import errors
from router.bus import consumers, publishing
from router.bus.connection import Bus
from router.config import logcontext
from router.config.settings import Settings
from router.engine import deadletters, reports, runs
from router.engine.policy import admission as admission_mod
from router.engine.policy import correlation
from router.engine.policy.store import PolicyStore
from router.model import commits, events, tracecontext
from router.model.bindings import nats as nats_binding
from router.rules import celexpr
from router.telemetry import metrics
from router.rules.loading import Rule
from router.rules.matching import Matcher

log = logging.getLogger(__name__)

BATCH = 128
DEAD = object()
"""Returned by ``_route`` for a message that went to the dead-letter stream: terminate, don't ack."""


class EventRouter:
    def __init__(self, bus: Bus, settings: Settings, matcher: Matcher, states: runs.RunStates) -> None:
        self.bus = bus
        self.settings = settings
        self.matcher = matcher
        """Replaced as a whole by a rule reload; read once per event, so a reload is atomic."""
        self.states = states
        self.admission: admission_mod.Admission | None = None
        self.correlator: correlation.Correlator | None = None

    async def open_policies(self) -> None:
        store = await PolicyStore.open(self.bus.js, self.settings)
        self.admission = admission_mod.Admission(store, self.states, self.bus.nc, self.settings.router.control_subject)
        self.correlator = correlation.Correlator(store, self.bus, self.settings.router.runs_subject)

    async def subscribe(self):
        return await consumers.subscribe(
            self.bus.js, subject=f"{self.settings.bus.events_subject}.>", stream=self.settings.bus.events_stream,
            durable=self.settings.router.durable, ack_wait=self.settings.router.ack_wait,
            max_ack_pending=BATCH * 8)

    async def run(self) -> None:
        await self.open_policies()
        subscription = await self.subscribe()
        log.info("routing events with %d rule(s)", len(self.matcher.rules))
        try:
            while True:
                messages = await consumers.fetch(subscription, BATCH, "events")
                if messages:
                    await self.handle(messages)
        finally:
            await consumers.unsubscribe(subscription)

    async def handle(self, messages: list[Msg]) -> None:
        metrics.routed(len(messages))
        progress = asyncio.create_task(self._progress(messages))
        try:
            results = await self._route_batch(messages, self.matcher)
        finally:
            progress.cancel()
        unavailable = [r for r in results if isinstance(r, errors.BusUnavailable)]
        if unavailable:  # one line per batch: an outage must be visible without flooding the log
            log.warning("routing %d of %d event(s) postponed 2s: %s", len(unavailable), len(results),
                        unavailable[0].detail)
        for msg, result in zip(messages, results):
            try:
                if result is DEAD:
                    await msg.term()
                elif isinstance(result, errors.PayloadTooLarge):
                    await self._dead(msg, f"its runs cannot be stored: {result.detail}")
                    await msg.term()
                elif isinstance(result, errors.BusUnavailable):
                    await msg.nak(delay=2.0)
                elif isinstance(result, BaseException):
                    log.error("routing event %s failed: %r; it will be redelivered", _where(msg), result)
                    await msg.nak(delay=5.0)
                else:
                    await msg.ack()
            except (nats.errors.Error, nats.js.errors.Error) as exc:
                # A lost ack means a redelivery, which the run ids make harmless.
                log.warning("could not settle event message: %s", exc)

    async def _progress(self, messages: list[Msg]) -> None:
        """Tell JetStream the batch is still being worked on, so a slow batch is not redelivered."""
        interval = max(self.settings.router.ack_wait / 3, 0.5)
        while True:
            await asyncio.sleep(interval)
            await asyncio.gather(*(msg.in_progress() for msg in messages), return_exceptions=True)

    async def _route_batch(self, messages: list[Msg], matcher: Matcher) -> list[object]:
        """Per message what ``handle`` settles it by: None (ack), ``DEAD`` or the exception.

        Most events match only rules without a run policy or a join: those are matched and their
        runs rendered here in turn, and every run of the batch is published at once (one pipeline,
        ``Bus.send_many``). An event that needs a policy or a join decision, or a dead letter, goes
        the slower way of its own task (``_route``), since those wait on the policy store."""
        results: list[object] = [None] * len(messages)
        slow: dict[int, asyncio.Future] = {}
        planned: list[tuple[int, runs.RunRecord]] = []
        for index, msg in enumerate(messages):
            try:
                event = nats_binding.from_message(msg.headers, msg.data)
            except errors.BadRequest as exc:
                slow[index] = asyncio.ensure_future(self._undecodable(msg, exc))
                continue
            try:
                # A task started inside takes these fields with it (it copies the context).
                with logcontext.bound(event_id=event.id, event_type=event.type, source=event.source,
                                      trace_id=tracecontext.trace_id(tracecontext.of(event))):
                    rules = matcher.match(event)
                    if any(rule.correlation is not None or admission_mod.Admission.applies(rule) for rule in rules):
                        slow[index] = asyncio.ensure_future(self._route(msg, event, rules))
                        continue
                    where = (msg.metadata.stream, msg.metadata.sequence.stream)
                    for rule in rules:
                        metrics.matched(rule.name)
                        planned.append((index, self._record(rule, event, where)))
            except Exception as exc:  # noqa: BLE001 - one event's bug must not fail its batch
                results[index] = exc
        outgoing: list[tuple[int, publishing.Outgoing]] = []
        for index, record in planned:
            try:
                outgoing.append((index, self._encoded(record)))
            except errors.IngestError as exc:
                results[index] = exc
        sent = await self.bus.send_many([message for _, message in outgoing]) if outgoing else []
        for (index, _), result in zip(outgoing, sent):
            if isinstance(result, Exception) and results[index] is None:
                results[index] = result
        if slow:
            for index, result in zip(slow, await asyncio.gather(*slow.values(), return_exceptions=True)):
                results[index] = result
        return results

    async def _undecodable(self, msg: Msg, exc: errors.BadRequest) -> object:
        await self._dead(msg, f"undecodable CloudEvent: {exc.detail}")
        return DEAD

    async def _route(self, msg: Msg, event: events.CloudEvent, rules: list[Rule]) -> None:
        """The runs of an event some of whose rules need the policy store or a join."""
        where = (msg.metadata.stream, msg.metadata.sequence.stream)
        records = []
        for rule in rules:
            metrics.matched(rule.name)
            if rule.correlation is None:
                batch = [self._record(rule, event, where)]
            else:
                batch = [self._record(rule, event, where, fired.run_id,
                                      await self.correlator.events(fired, (where, event)), fired.events)
                         for fired in await self.correlator.offer(rule, event, where)]
            if batch and admission_mod.Admission.applies(rule):
                for record in batch:
                    await self.admission.admit(rule, record, event, msg.metadata.sequence.stream)
            records += batch
        if records:
            await asyncio.gather(*(self._store(record) for record in records))

    async def _store(self, record: runs.RunRecord) -> None:
        await self.bus.send(self._encoded(record))

    def _encoded(self, record: runs.RunRecord) -> publishing.Outgoing:
        subject = f"{self.settings.router.runs_subject}.{record.run_id}"
        try:
            return self.bus.encode_raw(subject, record.dumps(), record.run_id)
        except errors.PayloadTooLarge as exc:
            # The rendered parameters are what can grow without bound (a template copying the event):
            # the run is still recorded, and ends in error saying why, instead of looping forever.
            log.error("run %s rule=%s: record too large (%s); recording it as failed", record.run_id, record.rule,
                      exc.detail)
            record.params, record.render_error = {}, f"rendered parameters too large for the bus: {exc.detail}"
            return self.bus.encode_raw(subject, record.dumps(), record.run_id)

    async def _dead(self, msg: Msg, reason: str) -> None:
        try:
            await deadletters.undecodable_event(self.bus, self.settings, msg, reason)
        except errors.PayloadTooLarge as exc:
            log.error("event %s: %s, and too large to dead-letter (%s); terminating it", _where(msg), reason,
                      exc.detail)

    def _record(self, rule: Rule, event: events.CloudEvent, where: tuple[str, int], run_id: str | None = None,
                joined: dict | None = None, kept: dict | None = None) -> runs.RunRecord:
        run_id = run_id or runs.run_id(rule.name, event)
        retry = rule.policy.retry
        params, render_error, environment = {}, None, event.source
        extra = {"events": {name: celexpr.values(doc)["event"] for name, doc in joined.items()}} if joined else None
        try:
            params = rule.render(event, extra)
            environment = rule.environment_for(event)
        except errors.PermanentError as exc:
            render_error = str(exc)
        # With each joined event's reference, so the executor can hand the events to the action.
        summaries = {name: {"id": doc.id, "source": doc.source, "type": doc.type,
                            **({"ref": kept[name]["ref"]} if "ref" in (kept or {}).get(name, {}) else {})}
                     for name, doc in joined.items()} if joined else None
        return runs.RunRecord(run_id=run_id, rule=rule.name, params=params, environment=environment,
                              timeout=rule.policy.timeout, retry_limit=retry.limit, retry_backoff=retry.backoff,
                              retry_max_backoff=retry.max_backoff, action=rule.action.name,
                              render_error=render_error, events=summaries, report=_report(rule, event, extra, joined),
                              stored_at=list(where), traceparent=tracecontext.of(event),
                              **runs.embed(event, *where))


def _report(rule: Rule, event: events.CloudEvent, extra: dict | None, joined: dict | None) -> dict | None:
    """The run's report plan: reporters rendered, and the commit the trigger or a joined event names."""
    if not rule.reports:
        return None
    commit, why = commits.of(event)
    for other in (joined or {}).values():
        if commit is None:
            commit, _ = commits.of(other)
    return reports.plan(rule.render_reports(event, extra), commit, why, joined)


def _where(msg: Msg) -> str:
    return f"{msg.metadata.stream}#{msg.metadata.sequence.stream}"
