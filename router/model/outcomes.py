"""Run outcomes as CDEvents 0.5.1 ``testsuiterun.queued/started/finished``.

Each outcome is linked to the triggering event (a RELATION/TRIGGER link to its id) and shares a
``chainId`` with it when the trigger is itself a CDEvent, so consumers can follow a push through
its pipeline to its verification. Ids are derived from (run id, stage): publishing an outcome again
after a crash is dropped by JetStream instead of producing a second ``finished``.

Where the run details live (documented in README): ``customData`` holds
``{"runId", "rule", "action", "event": {"id","source","type"}, "attempts", "durationSeconds",
"checks": [...]}``; ``subject.id`` is the run id; ``subject.content.testSuite.id`` is the rule name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from router.model import cdevents, event_types, events

Outcome = Literal["success", "failure", "error", "cancel"]
Severity = Literal["low", "medium", "high", "critical"]


@dataclass
class Result:
    """How a run ended: what an action returns, and what ``finished`` reports."""

    outcome: Outcome
    reason: str = ""
    checks: list[dict[str, Any]] = field(default_factory=list)
    """One entry per check: at least ``name`` and ``passed``; published in the outcome's customData."""
    severity: Severity | None = None


STAGES = {
    "queued": event_types.TESTSUITERUN_QUEUED,
    "started": event_types.TESTSUITERUN_STARTED,
    "finished": event_types.TESTSUITERUN_FINISHED,
}
SOURCE = "/trigger-router"


def _chain_id(trigger: events.CloudEvent) -> str | None:
    if trigger.type.startswith("dev.cdevents."):
        try:
            chain = (trigger.json() or {}).get("context", {}).get("chainId")
        except Exception:  # a malformed CDEvent still gets outcomes, just no shared chain
            return None
        return chain if isinstance(chain, str) and chain else None
    return None


def chain_id(trigger: events.CloudEvent | None, run_id: str) -> str:
    """The ``context.chainId`` every outcome of the run carries (what ``build`` puts there).

    ``None`` for a trigger that is no longer stored: right unless the trigger was a CDEvent with a
    ``chainId`` of its own (the caller knows its type)."""
    own = _chain_id(trigger) if trigger is not None else None
    return own or cdevents.deterministic_id("chain", f"run\x00{run_id}")


def build(stage: str, *, run_id: str, rule: str, action: str, environment: str,
          trigger: events.CloudEvent, result: Result | None = None, attempts: int = 0,
          duration: float | None = None, timestamp: str | None = None) -> events.CloudEvent:
    content: dict[str, Any] = {
        "environment": {"id": environment or "unknown"},
        "testSuite": {"id": rule, "name": rule},
    }
    if stage != "finished":
        content["trigger"] = {"type": "event"}
    custom: dict[str, Any] = {"runId": run_id, "rule": rule, "action": action,
                              "event": {"id": trigger.id, "source": trigger.source, "type": trigger.type}}
    if result is not None:
        content["outcome"] = result.outcome
        if result.reason:
            content["reason"] = result.reason[:2000]
        if result.severity:
            content["severity"] = result.severity
        custom.update(attempts=attempts, durationSeconds=round(duration or 0.0, 3), checks=result.checks)
    return cdevents.derive(
        trigger, STAGES[stage], subject_id=run_id, content=content,
        event_id=cdevents.deterministic_id("run", run_id, stage),
        chain_id=chain_id(trigger, run_id),
        source=f"{SOURCE}/rules/{rule}", custom_data=custom, timestamp=timestamp or cdevents.now(),
    )



TRUNCATED = "…[truncated]"


def bound(result: Result, max_bytes: int) -> Result:
    """``result`` with checks that serialize to at most ``max_bytes``, the longest strings cut first.

    A result is stored in the run state and published in ``finished``, both single NATS messages:
    an action that returns megabytes of output (an ``exec`` tail, a probe body) must still end its
    run. Every cut string ends with ``TRUNCATED`` and a last check says how much was cut: never silently.
    """
    def size(checks: Any) -> int:
        return len(json.dumps(checks, separators=(",", ":"), default=str))

    original = size(result.checks)
    if original <= max_bytes:
        return result
    limit = max_bytes
    checks: list[Any] = result.checks
    while size(checks) > max_bytes and limit > 64:
        limit //= 2
        checks = [{k: (v[:limit] + TRUNCATED if isinstance(v, str) and len(v) > limit else v)
                   for k, v in c.items()} if isinstance(c, dict) else c for c in result.checks]
    while checks and size(checks) > max_bytes:
        checks = checks[:-1]
    note = {"name": "result size", "passed": True,
            "detail": f"checks cut from {original} to at most {max_bytes} bytes to fit one NATS message"}
    return Result(result.outcome, result.reason, [*checks, note], result.severity)
