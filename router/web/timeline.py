"""A run's timeline: trigger event → policy decision → started → each check → finished → reports.

Built from what the engine stored (the run state, its ``reports``, the trigger read back by
``eventRef``) as plain steps, so the page template only lays them out and the order and wording
are tested here without a browser. A step that has not happened yet is shown as pending rather than
left out, so a stuck run shows where it is stuck.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from router.engine import queries
from router.model import events
from router.web.history import duration, iso

__all__ = ["Step", "build", "check_detail"]


@dataclass(frozen=True)
class Step:
    kind: str
    """``event``, ``decision``, ``started``, ``check``, ``finished`` or ``report``."""
    title: str
    status: str = "info"
    """How it went, for the colour: ``ok``, ``bad``, ``warn``, ``pending`` or ``info``."""
    at: str = ""
    detail: str = ""
    fields: list[tuple[str, str]] = field(default_factory=list)
    items: list[dict[str, str]] = field(default_factory=list)
    """A report step's attempts."""


def check_detail(check: Mapping[str, Any]) -> str:
    """Why a check passed or failed, in the words the action used (``error``, ``detail`` or ``reason``)."""
    for key in ("error", "detail", "reason", "message"):
        if check.get(key):
            return str(check[key])
    return ""


def _event_step(state: Mapping[str, Any], trigger: events.CloudEvent | None) -> Step:
    about = state.get("event") or {}
    if trigger is not None:
        fields = [("id", trigger.id), ("type", trigger.type), ("source", trigger.source),
                  ("subject", str(trigger.attributes.get("subject") or "-")),
                  ("time", str(trigger.attributes.get("time") or "-"))]
        return Step("event", f"trigger event {trigger.type}", "info", str(trigger.attributes.get("time") or ""),
                    fields=fields)
    fields = [(k, str(about.get(k) or "-")) for k in ("id", "type", "source")]
    why = ("the event is no longer stored (stream retention, bus.max_age)" if state.get("eventRef")
           else "this run was recorded without a reference to its stored event")
    return Step("event", f"trigger event {about.get('type', '')}".strip(), "warn", detail=why, fields=fields)


def _decision_step(state: Mapping[str, Any]) -> Step:
    label = state.get("decision")
    note = queries.policy_note(dict(state), iso)
    fields = [("environment", str(state.get("environment") or "-")), ("action", str(state.get("action") or "-"))]
    if state.get("notBefore"):
        fields.append(("not before", iso(state["notBefore"])))
    title = f"policy decision: {label}" if label else "queued (no run policy applied)"
    return Step("decision", title, "warn" if label not in (None, "queued") else "info", iso(state.get("queuedAt")),
                detail="" if note == "-" else note, fields=fields)


def _started_step(state: Mapping[str, Any]) -> Step:
    if state.get("startedAt"):
        fields = [("worker", str(state.get("worker") or "-")), ("deliveries", str(state.get("deliveries") or 1))]
        return Step("started", "started", "info", iso(state["startedAt"]), fields=fields)
    if state.get("state") == "finished":
        return Step("started", "never started", "info", detail="its run policy ended it before an executor took it")
    return Step("started", "not started yet", "pending")


def _finished_step(state: Mapping[str, Any]) -> Step:
    if state.get("state") != "finished":
        return Step("finished", "not finished yet", "pending", detail=f"state: {state.get('state', 'unknown')}")
    outcome = state.get("outcome") or "-"
    took = duration(state)
    fields = [("outcome", outcome), ("action attempts", str(state.get("attempts", 0))),
              ("duration", "-" if took is None else f"{took:.3f} s")]
    if state.get("severity"):
        fields.append(("severity", str(state["severity"])))
    if state.get("retriedAs"):
        fields.append(("retried as", str(state["retriedAs"])))
    status = {"success": "ok", "cancel": "warn"}.get(outcome, "bad")
    return Step("finished", f"finished: {outcome}", status, iso(state.get("finishedAt")),
                detail=str(state.get("reason") or ""), fields=fields)


def _report_steps(reports: list[Mapping[str, Any]]) -> list[Step]:
    steps = []
    for report in reports:
        if "reporter" not in report:  # the first entry: which commit the reports are about
            commit = report.get("commit") or {}
            where = " ".join(str(commit.get(k)) for k in ("provider", "repository", "sha") if commit.get(k))
            steps.append(Step("report", "reports are about " + (where or "no commit"), "info",
                              detail=str(report.get("why") or "")))
            continue
        attempts = [{"stage": str(a.get("stage", "")), "attempt": str(a.get("attempt", "")), "at": iso(a.get("at")),
                     "result": str(a.get("result", "")), "detail": str(a.get("detail", ""))}
                    for a in report.get("attempts", [])]
        last = attempts[-1]["result"] if attempts else ""
        status = "ok" if last in ("ok", "skipped") else "bad" if last in ("failed", "gave-up") else "pending"
        steps.append(Step("report", f"report: {report.get('reporter')}", status,
                          detail=str(report.get("error") or ""),
                          fields=[("stage reached", str(report.get("stage") or "none yet"))], items=attempts))
    return steps


def build(state: Mapping[str, Any], trigger: events.CloudEvent | None) -> list[Step]:
    steps = [_event_step(state, trigger), _decision_step(state), _started_step(state)]
    for check in state.get("checks") or []:
        if not isinstance(check, Mapping):
            continue
        fields = [(k, str(check[k])) for k in ("url", "status", "latencyMs", "attempts", "exitCode") if k in check]
        steps.append(Step("check", f"check: {check.get('name', '?')}", "ok" if check.get("passed") else "bad",
                          detail=check_detail(check), fields=fields))
    steps.append(_finished_step(state))
    steps += _report_steps(state.get("reports") or [])
    return steps
