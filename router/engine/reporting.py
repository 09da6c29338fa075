"""The reporting worker: tells each run's reporters about its stages, after the fact, once each.

It reads the outcomes stream (``testsuiterun.queued/started/finished``) with its own durable
consumer, shared by every router like the others. An outcome is only there once it is stored, and
the run's verdict was stored before ``finished`` was published, so nothing a reporter does (fail,
hang, get rate limited) can change, delay or lose a run's outcome.

For each outcome of a run that has reporters (``router.engine.reports``), every reporter that
reacts to the stage and has not completed it or a later stage is called with its stored state:

- success, or ``Skip``: the stage is completed for that reporter (its new state stored first);
- ``PermanentError``, a crash, or a render error of its parameters: recorded, completed, no retry;
- ``TemporaryError`` (a 429, a 5xx, a timeout): recorded with the time it may be tried again
  (the server's ``Retry-After`` / rate-limit reset when it gave one, else ``backoff.delay``), and the
  outcome message is naked until then. After ``reporting.max_attempts`` it is given up.

The order of a run's stages is not guaranteed (a retried ``started`` can come after ``finished``),
so a stage older than one a reporter completed is never called. Outcomes of one run are handled one
at a time in a process; two processes racing on one run are fenced by compare-and-set on the
progress entry, though each may have made its request by then (reporters repeat safely: a check run
is found again by its ``external_id``).

The commit a run is about is resolved once per run and kept in its entry: the trigger's own
(``commits.of``, done at routing), else each plug-in ``commit_finder`` (an image's revision label)
over the trigger and the joined events. A finder's temporary failure retries the stage; its
"none, because ..." is kept and given to reporters as ``commit_why``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Any

import aiohttp
import nats.errors
import nats.js.errors
from nats.aio.msg import Msg

from router import errors
from router.bus import backoff, consumers, stored
from router.bus.connection import Bus
from router.config import logcontext
from router.config.settings import Settings
from router.engine import reports
from router.model import commits, events, outcomes, tracecontext
from router.model.bindings import nats as nats_binding
from router.plugins import reporters as api
from router.plugins.catalog import Catalog
from router.telemetry import metrics

log = logging.getLogger(__name__)

NATS_ERRORS = (nats.errors.Error, nats.js.errors.Error, asyncio.TimeoutError)
STAGE_OF = {event_type: stage for stage, event_type in outcomes.STAGES.items()}


class ReportWorker:
    def __init__(self, bus: Bus, settings: Settings, plugins: Catalog) -> None:
        self.bus = bus
        self.settings = settings
        self.plugins = plugins
        self.states: reports.ReportStates | None = None
        self.session: aiohttp.ClientSession | None = None
        self.locks: dict[str, asyncio.Lock] = {}
        self.waiting: Counter[str] = Counter()
        """Tasks holding or awaiting each run's lock: the lock is dropped when none is left."""
        self.active: set[asyncio.Task] = set()

    @property
    def durable(self) -> str:
        return self.settings.reporting.durable or f"{self.settings.router.durable}-reports"

    async def run(self) -> None:
        await self.bus.wait_ready()
        self.states = await reports.ReportStates.open(self.bus.js, self.settings)
        settings = self.settings
        subscription = await consumers.subscribe(
            self.bus.js, subject=f"{settings.bus.outcomes_subject}.>", stream=settings.bus.outcomes_stream,
            durable=self.durable, ack_wait=settings.router.ack_wait,
            max_ack_pending=settings.reporting.concurrency * 4, start="new")
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=settings.reporting.timeout))
        try:
            await consumers.work(subscription, settings.reporting.concurrency, "outcomes to report", self.handle,
                                 self.active)
        finally:
            await consumers.unsubscribe(subscription)
            await self.session.close()

    async def handle(self, msg: Msg) -> None:
        try:
            outcome = nats_binding.from_message(msg.headers, msg.data)
            stage = STAGE_OF.get(outcome.type)
            run_id = _run_id(outcome) if stage else None
        except errors.TriggerRouterError as exc:
            log.warning("undecodable outcome on %s (%s); not reported", msg.subject, exc)
            await _settle(msg.ack())
            return
        if run_id is None or (msg.headers or {}).get(reports.HEADER) == "0":  # no reporters: no lookup
            await _settle(msg.ack())
            return
        logcontext.bind(run_id=run_id, stage=stage, trace_id=tracecontext.trace_id(tracecontext.of(outcome)))
        heartbeat = asyncio.create_task(self._heartbeat(msg))
        self.waiting[run_id] += 1
        try:
            async with self.locks.setdefault(run_id, asyncio.Lock()):
                delay = await self.report(run_id, stage, outcome)
        except errors.BusUnavailable as exc:
            log.warning("run %s: cannot report %s now (%s); retrying", run_id, stage, exc.detail)
            delay = 2.0
        except Exception:  # a bug here must not leave the message unsettled until ack_wait
            log.exception("run %s: reporting %s failed", run_id, stage)
            delay = 5.0
        finally:
            heartbeat.cancel()
            self.waiting[run_id] -= 1
            if not self.waiting[run_id]:
                del self.waiting[run_id], self.locks[run_id]
        await _settle(msg.ack() if delay is None else msg.nak(delay=delay))

    async def report(self, run_id: str, stage: str, outcome: events.CloudEvent) -> float | None:
        """Call the reporters due for ``stage``; seconds until one should be tried again, or None."""
        found = await self.states.get(run_id)
        if found is None or not found.value:
            return None  # the rule has no reporters
        entry, revision = found.value, found.revision
        due = [i for i, progress in enumerate(entry.get("reporters", [])) if self._due(progress, stage)]
        if not due:
            return None
        trigger, joined = await self._events(entry)
        if "commitWhy" not in entry:
            try:
                entry = {**entry, **await self._commit(entry, trigger, joined)}
            except errors.TemporaryError as exc:
                attempt = entry.get("commitTries", 0) + 1
                log.warning("run %s: cannot find its commit now (%s); reporting %s later", run_id, exc, stage)
                return exc.delay or backoff.delay(attempt, self.settings.reporting.backoff,
                                                  self.settings.reporting.max_backoff)
        waits = []
        for index in due:
            progress = entry["reporters"][index]
            wait = progress.get("retryAt", {}).get(stage, 0) - time.time()
            if wait > 0:
                waits.append(wait)
                continue
            progress = await self._call(entry, progress, stage, trigger, joined, outcome)
            metrics.report(progress.get("reporter") or "unknown", stage, progress["attempts"][-1]["result"])
            entry = {**entry, "reporters": [*entry["reporters"][:index], progress, *entry["reporters"][index + 1:]]}
            written = await self.states.write(run_id, entry, revision)
            if written is None:
                log.info("run %s: report progress changed under us (another router); %s again later", run_id, stage)
                return 1.0
            revision = written
            if progress.get("retryAt", {}).get(stage):
                waits.append(progress["retryAt"][stage] - time.time())
        return max(min(waits), 0.1) if waits else None

    def _due(self, progress: dict[str, Any], stage: str) -> bool:
        if reports.done(progress, stage):
            return False
        reporter = self.plugins.reporters.get(progress.get("reporter"))
        if reporter is None or progress.get("error"):
            return True  # called, to record why it cannot report
        try:
            return stage in reporter.stages(reporter.params.model_validate(progress.get("params") or {}))
        except ValueError:
            return True

    async def _events(self, entry: dict[str, Any]) -> tuple[events.CloudEvent, dict[str, events.CloudEvent]]:
        joined = {name: events.from_json_object(doc) for name, doc in (entry.get("joined") or {}).items()}
        if entry.get("trigger"):
            return events.from_json_object(entry["trigger"]), joined
        stream, sequence = entry.get("triggerRef") or ("", 0)
        found = await stored.event(self.bus.js, stream, sequence) if stream else None
        if found is None:
            about = entry.get("event") or {}
            found = events.make({k: about.get(k) or "unknown" for k in ("id", "source", "type")})
        return found, joined

    async def _commit(self, entry: dict[str, Any], trigger: events.CloudEvent,
                      joined: dict[str, events.CloudEvent]) -> dict[str, Any]:
        """``{"commit", "commitWhy"}`` through the commit finders (``TemporaryError`` if one cannot answer now)."""
        whys = [entry["ownCommitWhy"]] if entry.get("ownCommitWhy") else []
        for event in (trigger, *joined.values()):
            for name, find in self.plugins.commit_finders.items():
                answer = await find(event, self.bus)
                if answer is None:
                    continue
                commit, why = answer
                if commit is not None:
                    return {"commit": commit.__dict__, "commitWhy": commit.describe()}
                whys.append(why)
        return {"commit": None, "commitWhy": "; ".join(whys) or f"{trigger.type} names no commit"}

    async def _call(self, entry: dict[str, Any], progress: dict[str, Any], stage: str, trigger: events.CloudEvent,
                    joined: dict[str, events.CloudEvent], outcome: events.CloudEvent) -> dict[str, Any]:
        name, run_id = progress.get("reporter"), entry.get("runId")
        reporter = self.plugins.reporters.get(name)
        if reporter is None:
            return reports.record(progress, stage, "failed", f"reporter {name!r} is not available in this router",
                                  completed=True)
        if progress.get("error"):
            return reports.record(progress, stage, "failed", progress["error"], completed=True)
        limits = self.settings.reporting
        attempt = reports.attempts(progress, stage) + 1
        commit = commits.Commit(**entry["commit"]) if entry.get("commit") else None
        result, run_attempts, duration = _result(outcome) if stage == "finished" else (None, 0, 0.0)
        context = api.Context(
            stage=stage, run_id=run_id, rule=entry.get("rule", ""), action=entry.get("action", ""),
            environment=entry.get("environment", ""), trigger=trigger, outcome=outcome, commit=commit,
            commit_why=entry.get("commitWhy", ""), attempt=attempt, last_attempt=attempt >= limits.max_attempts,
            result=result, run_attempts=run_attempts, duration=duration, joined=joined, session=self.session)
        try:
            params = reporter.params.model_validate(progress.get("params") or {})
            state = await asyncio.wait_for(reporter.run(params, context, dict(progress.get("state") or {})),
                                           limits.timeout)
        except api.Skip as exc:
            log.info("run %s: %s %s skipped: %s", run_id, name, stage, exc.reason)
            return reports.record(progress, stage, "skipped", exc.reason, completed=True)
        except (errors.TemporaryError, asyncio.TimeoutError, aiohttp.ClientError) as exc:
            detail = _describe(exc, limits.timeout)
            if attempt >= limits.max_attempts:
                log.warning("run %s: %s %s given up after %d attempts: %s", run_id, name, stage, attempt, detail)
                return reports.record(progress, stage, "gave-up", detail, completed=True)
            asked = getattr(exc, "delay", None)
            delay = asked if asked is not None else backoff.delay(attempt, limits.backoff, limits.max_backoff)
            log.info("run %s: %s %s attempt %d failed (%s); again in %.1fs", run_id, name, stage, attempt, detail,
                     delay)
            return reports.record(progress, stage, "retry", detail, completed=False, retry_at=time.time() + delay)
        except errors.PermanentError as exc:
            log.warning("run %s: %s %s failed: %s", run_id, name, stage, exc)
            return reports.record(progress, stage, "failed", str(exc), completed=True)
        except Exception as exc:  # a reporter bug is that reporter's failure, never the worker's
            log.exception("run %s: reporter %s crashed at %s", run_id, name, stage)
            return reports.record(progress, stage, "failed", f"crashed: {exc.__class__.__name__}: {exc}",
                                  completed=True)
        log.info("run %s: %s reported %s", run_id, name, stage)
        return reports.record(progress, stage, "ok", completed=True, state=state)

    async def _heartbeat(self, msg: Msg) -> None:
        interval = max(self.settings.router.ack_wait / 3, 0.5)
        while True:
            await asyncio.sleep(interval)
            try:
                await msg.in_progress()
            except NATS_ERRORS as exc:
                log.debug("in_progress failed: %s", exc)


def _run_id(outcome: events.CloudEvent) -> str | None:
    try:
        data = outcome.json() if outcome.is_json() else None
    except Exception:  # noqa: BLE001 - not ours if its data is not JSON
        return None
    custom = data.get("customData") if isinstance(data, dict) else None
    run_id = custom.get("runId") if isinstance(custom, dict) else None
    return run_id if isinstance(run_id, str) else None


def _result(outcome: events.CloudEvent) -> tuple[outcomes.Result, int, float]:
    """The run's result as ``finished`` published it: (result, the run's attempts, its duration)."""
    data = outcome.json()
    content = data.get("subject", {}).get("content", {})
    custom = data.get("customData", {})
    result = outcomes.Result(content.get("outcome", "error"), content.get("reason", ""), custom.get("checks") or [],
                             content.get("severity"))
    return result, int(custom.get("attempts") or 0), float(custom.get("durationSeconds") or 0.0)


def _describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return f"no answer within reporting.timeout ({timeout:g}s)"
    text = str(exc) or exc.__class__.__name__
    return text if isinstance(exc, errors.TriggerRouterError) else f"{exc.__class__.__name__}: {text}"


async def _settle(reply) -> None:
    try:
        await reply
    except NATS_ERRORS as exc:
        log.debug("could not settle an outcome message: %s", exc)
