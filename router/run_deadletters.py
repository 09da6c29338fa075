"""Dead-lettered runs: what ended in ``error`` is kept, whole, so a person can run it again.

A run whose action failed for good (a permanent error, a timeout, or temporary errors until the
rule's ``policy.retry.limit`` was used up) ends with outcome ``error`` and its complete record (the
triggering event, the rule, the rendered parameters) is stored on the dead-letter stream under
``<bus.deadletter_subject>.runs.<run id>``, with the last error in a header. ``runs retry RUN_ID``
reads it back and queues a *new* run: its id is derived from the old id and the retry number, so
the old run's history and outcomes stay as they were, and retrying twice gives two distinct runs.
A retried run skips the keyed policies (concurrency, debounce, dedupe, rate limit): it is a
deliberate act, not one more event in a burst.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time

import nats.js.errors

from router import actions, errors, runs
from router.bus import Bus
from router.settings import Settings

REASON_HEADER = "Trigger-Router-Reason"


def subject(settings: Settings, run_id: str) -> str:
    return f"{settings.bus.deadletter_subject}.runs.{run_id}"


def retry_id(run_id: str, number: int) -> str:
    return hashlib.sha256(f"{run_id}\x00retry\x00{number}".encode()).hexdigest()[:32]


async def record(bus: Bus, settings: Settings, run: runs.RunRecord, result: actions.Result, attempts: int) -> None:
    await bus.publish_raw(subject(settings, run.run_id), run.dumps(), f"dead-run-{run.run_id}", {
        REASON_HEADER: result.reason[:2000] or "error", "Trigger-Router-Rule": run.rule,
        "Trigger-Router-Attempts": str(attempts), "Trigger-Router-Dead-At": str(time.time())})


async def load(bus: Bus, settings: Settings, run_id: str) -> tuple[runs.RunRecord, str]:
    """The dead-lettered record and its last error; ``ConfigError`` if the run was not dead-lettered."""
    try:
        msg = await bus.js.get_last_msg(settings.bus.deadletter_stream, subject(settings, run_id))
    except nats.js.errors.NotFoundError as exc:
        raise errors.ConfigError(f"run {run_id!r} has no dead-letter record (only runs that ended in "
                                 "error have one; see `trigger-router runs list`)") from exc
    return runs.RunRecord.loads(msg.data), (msg.headers or {}).get(REASON_HEADER, "")


def requeue(dead: runs.RunRecord, number: int) -> runs.RunRecord:
    return dataclasses.replace(dead, run_id=retry_id(dead.run_id, number), queued_at=time.time(), not_before=0.0,
                               policy={}, decision={"run": True, "label": f"retry #{number}", "reason": "",
                                                    "outcome": "cancel", "fields": {"retryOf": dead.run_id}},
                               retry_of=dead.run_id)
