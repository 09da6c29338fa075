"""What clients may ask of the engine: runs with their state, waiting joins, re-running a dead run.

The CLI's ``runs`` commands are short-lived clients of the same JetStream state the engine keeps;
this module is the engine's public face for them, so that they never reach into routing, the
executor or the policy runtime (and those can change without breaking the commands).
"""

from __future__ import annotations

from typing import Any, Callable

from nats.js import JetStreamContext

from router.bus import stored
from router.bus.connection import Bus
from router.config.settings import Settings
from router.engine import deadletters, reports, runs
from router.engine.policy import correlation
from router.engine.policy.store import PolicyStore
from router.model import events

__all__ = ["get_run", "list_runs", "policy_note", "recent_runs", "retry_run", "runs_stream_config", "trigger_event",
           "waiting_joins"]

runs_stream_config = runs.runs_stream_config


async def list_runs(js: JetStreamContext, settings: Settings,
                    rule: str | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every run's state (oldest first) and every partial correlation join, of ``rule`` if given."""
    states = await (await runs.RunStates.open(js, settings)).all()
    joins = await correlation.waiting(await PolicyStore.open(js, settings))
    return ([s for s in states if rule is None or s.get("rule") == rule],
            [j for j in joins if rule is None or j.get("rule") == rule])


async def recent_runs(js: JetStreamContext, settings: Settings, limit: int) -> tuple[list[dict[str, Any]], int]:
    """At most ``limit`` run states, the most recently written, latest queued first; and about how
    many the bucket holds (the web view says so when it shows fewer)."""
    return await (await runs.RunStates.open(js, settings)).newest(limit)


async def waiting_joins(js: JetStreamContext, settings: Settings) -> list[dict[str, Any]]:
    """Every partial correlation join (events arrived, others still missing)."""
    return await correlation.waiting(await PolicyStore.open(js, settings))


async def trigger_event(js: JetStreamContext, state: dict[str, Any]) -> events.CloudEvent | None:
    """The run's triggering event, read back through its ``eventRef``; ``None`` when the state has no
    reference (runs recorded before it existed) or retention has removed the event."""
    ref = state.get("eventRef")
    if not isinstance(ref, list) or len(ref) != 2:
        return None
    return await stored.event(js, str(ref[0]), int(ref[1]))


async def get_run(js: JetStreamContext, settings: Settings, run_id: str) -> dict[str, Any] | None:
    """The run's state, with ``reports``: each reporter's progress and attempts (when it has reporters)."""
    state = await (await runs.RunStates.open(js, settings)).get(run_id)
    if state is not None:
        found = await (await reports.ReportStates.open(js, settings)).get(run_id)
        shown = reports.summary(found.value if found else None)
        if shown:
            state["reports"] = shown
    return state


async def retry_run(bus: Bus, settings: Settings, run_id: str) -> tuple[str, int, str]:
    """Queue a new run from the dead-lettered ``run_id``: (new run id, retry number, last error).

    ``errors.ConfigError`` if the run has no dead-letter record (it did not end in error).
    """
    dead, reason = await deadletters.load_run(bus, settings, run_id)
    states = await runs.RunStates.open(bus.js, settings)
    number = ((await states.get(run_id)) or {}).get("retries", 0) + 1
    again = deadletters.requeue(dead, number)
    await bus.publish_raw(f"{settings.router.runs_subject}.{again.run_id}", again.dumps(), again.run_id)
    await states.update(run_id, retries=number, retriedAs=again.run_id)
    return again.run_id, number, reason


def policy_note(state: dict[str, Any], when: Callable[[float | None], str]) -> str:
    """One phrase for what run policies did to this run ("-" when none applied); ``when`` formats a time."""
    label, finished = state.get("decision"), state.get("state") == "finished"
    if finished and state.get("outcome") == "cancel":
        return state.get("reason") or label or "-"
    if not label or label == "queued":
        return "-"
    if not finished and label == "rate-limited":
        return f"rate-limited until {when(state.get('rateLimitedUntil'))}"
    if not finished and state.get("notBefore"):
        return f"{label} until {when(state['notBefore'])}"
    return label
