"""Every dead-letter path in one place: what cannot be processed is kept, with the reason, never lost.

All four end on the dead-letter stream (``bus.deadletter_stream``), each under its own subject:

- ``<deadletter subject>.ingest``: an item of a delivery that cannot be ingested. Registries that
  send several events per request (the distribution registry's notification envelope) retry the
  whole request until it is answered 2xx, and block their queue meanwhile. Refusing a batch because
  one item is malformed would retry it forever; publishing it without the bad item would lose it
  silently. So a source returns a ``plugins.Rejected`` for such an item, the HTTP edge stores it as
  one CloudEvent of type ``event_types.INGEST_REJECTED`` (its data names the source, the delivery,
  the reason and the item) and answers 2xx once everything is stored.
- ``<deadletter subject>.events``: a message on the events stream that is not a CloudEvent; the
  router stores it with the reason in a header and terminates it instead of redelivering it forever.
- ``<deadletter subject>.runs.<run id>``: a run that ended in ``error`` (a permanent error, a
  timeout, or temporary errors until ``policy.retry.limit`` was used up), kept whole (the triggering
  event, the rule, the rendered parameters) so that ``runs retry RUN_ID`` can queue a *new* run from
  it. The new run's id is derived from the old id and the retry number, so the old run's history
  and outcomes stay as they were, and retrying twice gives two distinct runs. A retried run skips
  the keyed policies (concurrency, debounce, dedupe, rate limit): it is a deliberate act, not one
  more event in a burst.
- ``<deadletter subject>.subscriptions.<subscription id>``: an event a subscription's sink did not
  take within ``subscriptions.max_attempts`` attempts, or refused for good (a 400). The message is
  the event as it was on the bus (binary mode), with the reason, the attempts and the subscription.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time

import nats.js.errors
from nats.aio.msg import Msg

from router import errors
from router.bus.connection import Bus
from router.config.settings import Settings
from router.engine import runs
from router.model import cdevents, event_types, events, outcomes
from router.plugins.sources import Rejected

log = logging.getLogger(__name__)

REASON_HEADER = "Trigger-Router-Reason"


# --- ingest: items of a delivery ---------------------------------------------------------------

def ingest_subject(deadletter_subject: str) -> str:
    return f"{deadletter_subject}.ingest"


def rejected_event(source_name: str, delivery_id: str, rejected: Rejected) -> events.CloudEvent:
    """Deterministic id: a redelivered batch dead-letters the same item once."""
    item = json.dumps(rejected.item, sort_keys=True, separators=(",", ":"), default=str)
    event_id = cdevents.deterministic_id("rejected", source_name, delivery_id, str(rejected.index), item)
    return events.make(
        {"id": event_id, "source": f"/webhooks/{source_name}", "type": event_types.INGEST_REJECTED,
         "time": cdevents.now()},
        {"source": source_name, "delivery": delivery_id, "index": rejected.index,
         "reason": rejected.reason, "field": rejected.field, "item": rejected.item},
    )


# --- events: messages that are not CloudEvents -------------------------------------------------

async def undecodable_event(bus: Bus, settings: Settings, msg: Msg, reason: str) -> None:
    log.warning("dead-lettering message %s on %s: %s", msg.metadata.sequence.stream, msg.subject, reason)
    headers = {k: v for k, v in (msg.headers or {}).items() if k != "Nats-Msg-Id"}
    headers.update({REASON_HEADER: reason, "Trigger-Router-Subject": msg.subject,
                    "Trigger-Router-Dead-At": str(time.time())})
    await bus.publish_raw(f"{settings.bus.deadletter_subject}.events", msg.data,
                          event_msg_id(msg.metadata.stream, msg.metadata.sequence.stream), headers)


def event_msg_id(stream: str, sequence: int) -> str:
    """``Nats-Msg-Id`` of a dead-lettered event: a redelivery of the same message is stored once."""
    return f"dead-{stream}-{sequence}"


# --- runs: runs that ended in error --------------------------------------------------------------

def run_subject(settings: Settings, run_id: str) -> str:
    return f"{settings.bus.deadletter_subject}.runs.{run_id}"


def run_msg_id(run_id: str) -> str:
    """``Nats-Msg-Id`` of a dead-lettered run: recording it again after a crash is stored once."""
    return f"dead-run-{run_id}"


def retry_id(run_id: str, number: int) -> str:
    return hashlib.sha256(f"{run_id}\x00retry\x00{number}".encode()).hexdigest()[:32]


async def record_run(bus: Bus, settings: Settings, run: runs.RunRecord, result: outcomes.Result,
                     attempts: int) -> None:
    await bus.publish_raw(run_subject(settings, run.run_id), run.dumps(), run_msg_id(run.run_id), {
        REASON_HEADER: result.reason[:2000] or "error", "Trigger-Router-Rule": run.rule,
        "Trigger-Router-Attempts": str(attempts), "Trigger-Router-Dead-At": str(time.time())})


async def load_run(bus: Bus, settings: Settings, run_id: str) -> tuple[runs.RunRecord, str]:
    """The dead-lettered record and its last error; ``ConfigError`` if the run was not dead-lettered."""
    try:
        msg = await bus.js.get_last_msg(settings.bus.deadletter_stream, run_subject(settings, run_id))
    except nats.js.errors.NotFoundError as exc:
        raise errors.ConfigError(f"run {run_id!r} has no dead-letter record (only runs that ended in "
                                 "error have one; see `trigger-router runs list`)") from exc
    return runs.RunRecord.loads(msg.data), (msg.headers or {}).get(REASON_HEADER, "")


def requeue(dead: runs.RunRecord, number: int) -> runs.RunRecord:
    return dataclasses.replace(dead, run_id=retry_id(dead.run_id, number), queued_at=time.time(), not_before=0.0,
                               policy={}, decision={"run": True, "label": f"retry #{number}", "reason": "",
                                                    "outcome": "cancel", "fields": {"retryOf": dead.run_id}},
                               retry_of=dead.run_id)


# --- subscriptions: events their sink did not take --------------------------------------------------

def subscription_subject(settings: Settings, subscription_id: str) -> str:
    return f"{settings.bus.deadletter_subject}.subscriptions.{subscription_id}"


async def undelivered(bus: Bus, settings: Settings, subscription_id: str, msg: Msg, reason: str,
                      attempts: int) -> None:
    """Store ``msg`` (an event of the events or outcomes stream) as undeliverable to the subscription;
    a crash before its ack stores it once (``Nats-Msg-Id`` from the subscription and the message)."""
    headers = {k: v for k, v in (msg.headers or {}).items() if k != "Nats-Msg-Id"}
    reason = " ".join(reason.split()).encode("ascii", "replace").decode()[:2000]  # one header line
    headers.update({REASON_HEADER: reason or "undeliverable", "Trigger-Router-Subscription": subscription_id,
                    "Trigger-Router-Attempts": str(attempts), "Trigger-Router-Subject": msg.subject,
                    "Trigger-Router-Dead-At": str(time.time())})
    stream, sequence = msg.metadata.stream, msg.metadata.sequence.stream
    await bus.publish_raw(subscription_subject(settings, subscription_id), msg.data,
                          f"dead-sub-{subscription_id}-{stream}-{sequence}", headers)
