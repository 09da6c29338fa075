"""What the runs page shows: filters over run states, one table row per run, the trigger event.

Run states live in a KV bucket that a busy router fills with thousands of entries, so a page
never reads all of them: ``engine.queries.recent_runs`` reads the ``web.max_runs`` most recently
written, and the filters (``rule``, ``outcome``, ``since``, ``limit``) narrow those down. The page
says how many states it read out of how many the bucket holds, so a missing old run is explained.

Filter values come from the query string; a bad one is ``errors.BadRequest`` naming the parameter
(the edge answers 400), never a silently ignored filter that shows the wrong runs.
"""

from __future__ import annotations

import datetime
import json
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

from router import errors
from router.config.base import parse_duration
from router.engine import queries
from router.model import events

__all__ = ["OUTCOMES", "EVENT_SHOWN_BYTES", "Filters", "Row", "event_json", "iso", "row", "parse_time"]

OUTCOMES = ("success", "failure", "error", "cancel", "unfinished")
"""What ``outcome=`` may say: a run's outcome, or ``unfinished`` (queued or running)."""
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
EVENT_SHOWN_BYTES = 64 * 1024
"""The trigger event's JSON is cut here on a run's page (an 800 KB webhook stays readable)."""


def iso(timestamp: float | None) -> str:
    """Epoch seconds as ISO 8601 in UTC to the second (``2026-12-01T16:20:35Z``); ``-`` for none."""
    if not timestamp:
        return "-"
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str, now: float) -> float:
    """``since=``: a duration back from now (``90m``, ``24h``, ``7d``) or an ISO 8601 date or time
    (``2026-12-01``, ``2026-12-01T08:00:00Z``; without an offset it is UTC)."""
    text = text.strip()
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        when = datetime.datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        raise errors.BadRequest(f"since={text[:40]!r} is neither a duration such as 24h nor an ISO 8601 time "
                                "such as 2026-12-01T08:00:00Z", field="since") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when.timestamp()


@dataclass(frozen=True)
class Filters:
    rule: str = ""
    outcome: str = ""
    since: str = ""
    """As written (shown back in the form); ``since_at`` is the time it means."""
    since_at: float | None = None
    limit: int = DEFAULT_LIMIT

    @classmethod
    def parse(cls, query: Mapping[str, str], now: float | None = None) -> "Filters":
        now = time.time() if now is None else now
        rule, outcome, since = (query.get(k, "").strip() for k in ("rule", "outcome", "since"))
        if outcome and outcome not in OUTCOMES:
            raise errors.BadRequest(f"outcome must be one of {', '.join(OUTCOMES)}", field="outcome")
        limit_text = query.get("limit", "").strip()
        try:
            limit = int(limit_text) if limit_text else DEFAULT_LIMIT
        except ValueError:
            raise errors.BadRequest("limit must be a whole number", field="limit") from None
        if not 1 <= limit <= MAX_LIMIT:
            raise errors.BadRequest(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
        return cls(rule[:200], outcome, since[:64], parse_time(since, now) if since else None, limit)

    def admits(self, state: Mapping[str, Any]) -> bool:
        if self.rule and state.get("rule") != self.rule:
            return False
        finished = state.get("state") == "finished"
        if self.outcome == "unfinished" and finished:
            return False
        if self.outcome not in ("", "unfinished") and (not finished or state.get("outcome") != self.outcome):
            return False
        return self.since_at is None or (state.get("queuedAt") or 0) >= self.since_at

    def select(self, states: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
        """The states admitted, at most ``limit`` of them (in the given order), and how many were admitted."""
        admitted = [s for s in states if self.admits(s)]
        return admitted[:self.limit], len(admitted)


@dataclass(frozen=True)
class Row:
    run_id: str
    rule: str
    state: str
    outcome: str
    queued: str
    duration: float | None
    event_type: str
    event_id: str
    policy: str
    reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def duration(state: Mapping[str, Any]) -> float | None:
    if state.get("durationSeconds") is not None:
        return float(state["durationSeconds"])
    if state.get("finishedAt") and state.get("startedAt"):
        return max(0.0, state["finishedAt"] - state["startedAt"])
    return None


def row(state: Mapping[str, Any]) -> Row:
    about = state.get("event") or {}
    return Row(run_id=str(state.get("runId", "")), rule=str(state.get("rule", "-")), state=str(state.get("state", "-")),
               outcome=str(state.get("outcome") or ""), queued=iso(state.get("queuedAt")), duration=duration(state),
               event_type=str(about.get("type") or "-"), event_id=str(about.get("id") or "-"),
               policy=queries.policy_note(dict(state), iso), reason=str(state.get("reason") or ""))


def event_json(event: events.CloudEvent) -> tuple[str, int]:
    """The event in the JSON format, indented, cut at ``EVENT_SHOWN_BYTES``; and how many bytes were cut."""
    text = json.dumps(events.to_json_object(event), indent=2, ensure_ascii=False, sort_keys=False, default=str)
    encoded = text.encode()
    if len(encoded) <= EVENT_SHOWN_BYTES:
        return text, 0
    return encoded[:EVENT_SHOWN_BYTES].decode(errors="ignore"), len(encoded) - EVENT_SHOWN_BYTES
