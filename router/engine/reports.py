"""Report progress: per run, what each of its rule's reporters has told and every attempt to.

A rule's ``spec.report`` is rendered at routing into the run record (``RunRecord.report``); the
executor copies that plan into this bucket, create-only, *before* the run's state exists, so a run
that has a state and reporters always has an entry here. The reporting worker
(``router.engine.reporting``) then keeps, per reporter, the last stage it completed, the state
it returned (a check-run id), and its attempts (capped at ``MAX_ATTEMPTS_KEPT``, newest kept).

It is a bucket of its own rather than fields of the run state because the executor's writes to
the run state are compare-and-set fences of its lease: a reporter writing there would look to the
executor like another worker taking the run over. ``runs show`` merges the two.
"""

from __future__ import annotations

import time
from typing import Any

from nats.js import JetStreamContext

from router.bus import kv
from router.config.settings import Settings
from router.engine import runs
from router.model import commits, events
from router.plugins.reporters import STAGES

__all__ = ["HEADER", "MAX_ATTEMPTS_KEPT", "ReportStates", "done", "plan", "summary"]

HEADER = "Tr-Reports"
"""NATS header (not a CloudEvent attribute) on every outcome the executor publishes: ``1`` when the
run has reporters, ``0`` when not, so the reporting worker skips the lookup for most outcomes. An
outcome without it (from an older router) is looked up as before."""

MAX_ATTEMPTS_KEPT = 20
"""Attempts kept per reporter and run; older ones are dropped (the count is kept)."""


def plan(reporters: list[dict[str, Any]], commit: commits.Commit | None, why: str,
         joined: dict[str, events.CloudEvent] | None) -> dict[str, Any]:
    """``RunRecord.report`` at routing: rendered reporters, the trigger's own commit (or why none),
    and, when there is none, the joined events a commit finder may find it in (small ones only)."""
    entry: dict[str, Any] = {"reporters": reporters}
    if commit is not None:
        entry.update(commit=commit.__dict__, commitWhy=commit.describe())
        return entry
    entry["ownCommitWhy"] = why
    if joined:
        documents = {name: events.to_json_object(event, binary=True) for name, event in joined.items()}
        entry["joined"] = {name: doc for name, doc in documents.items()
                           if len(doc.get("data_base64") or "") <= runs.EMBED_LIMIT}
    return entry


def entry_for(record: runs.RunRecord) -> dict[str, Any]:
    """The progress entry the executor creates at ``queued`` from the run's record."""
    return {"runId": record.run_id, "rule": record.rule, "action": record.action, "environment": record.environment,
            "event": record.about(), "trigger": record.event, "triggerRef": record.event_ref, **(record.report or {})}


def done(progress: dict[str, Any], stage: str) -> bool:
    """Whether ``progress`` (one reporter's) already completed ``stage`` or a later one."""
    reached = progress.get("stage")
    return reached is not None and STAGES.index(reached) >= STAGES.index(stage)


def attempts(progress: dict[str, Any], stage: str) -> int:
    return progress.get("tries", {}).get(stage, 0)


def record(progress: dict[str, Any], stage: str, result: str, detail: str = "", *,
           completed: bool, retry_at: float | None = None, state: dict | None = None) -> dict[str, Any]:
    """``progress`` after one attempt at ``stage``: ``result`` is ok, skipped, failed, retry or gave-up."""
    now = time.time()
    tries = {**progress.get("tries", {}), stage: attempts(progress, stage) + 1}
    entry = {"stage": stage, "attempt": tries[stage], "at": round(now, 3), "result": result}
    if detail:
        entry["detail"] = detail[:500]
    if retry_at is not None:
        entry["retryAt"] = round(retry_at, 3)
    updated = {**progress, "tries": tries, "attempts": [*progress.get("attempts", []), entry][-MAX_ATTEMPTS_KEPT:]}
    retry = dict(progress.get("retryAt", {}))
    retry.pop(stage, None)
    if retry_at is not None:
        retry[stage] = retry_at
    updated["retryAt"] = retry
    if completed:
        updated["stage"] = stage
    if state is not None:
        updated["state"] = state
    return updated


def summary(entry: dict[str, Any] | None) -> list[dict[str, Any]]:
    """What ``runs show`` prints under ``reports``: per reporter, where it stands and its attempts."""
    if not entry:
        return []
    shown = []
    for progress in entry.get("reporters", []):
        item = {"reporter": progress.get("reporter"), "stage": progress.get("stage"),
                "attempts": progress.get("attempts", [])}
        for key in ("error", "state"):
            if progress.get(key):
                item[key] = progress[key]
        shown.append(item)
    if shown:
        commit = entry.get("commit")
        shown.insert(0, {"commit": commit, "why": entry.get("commitWhy", "")} if commit or entry.get("commitWhy")
                     else {"commit": None, "why": "not looked up yet"})
    return shown


class ReportStates:
    def __init__(self, bucket: kv.Bucket) -> None:
        self.bucket = bucket

    @classmethod
    async def open(cls, js: JetStreamContext, settings: Settings) -> "ReportStates":
        return cls(await kv.open_bucket(js, settings.reporting.bucket, description="trigger-router: report progress",
                                        what="report state", ttl=settings.bus.max_age, replicas=settings.bus.replicas))

    async def plan(self, run: str, plan: dict[str, Any]) -> None:
        """The run's report plan, unless it has one (a redelivered ``queued`` keeps the progress)."""
        await self.bucket.create(run, plan)

    async def get(self, run: str) -> kv.Entry | None:
        return await self.bucket.get(run)

    async def write(self, run: str, value: dict[str, Any], revision: int) -> int | None:
        return await self.bucket.update(run, value, revision)
