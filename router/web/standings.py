"""The rules page: each rule seen in the run states read, with its last outcome, counts and chart.

Rules are taken from the run states, not from the rule files: the view shows what happened (a rule
removed yesterday still has history; one that never matched has none), and it works on a router
process that does not load the rules itself. "Matches" are runs, one per (event, rule) pair that
matched, counted over the states read (``web.max_runs``, the most recently written), which the
page says.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from markupsafe import Markup

from router.web import charts
from router.web.history import iso

__all__ = ["Standing", "summarize"]


@dataclass
class Standing:
    rule: str
    matches: int = 0
    counts: Counter = field(default_factory=Counter)
    """By outcome; ``unfinished`` for runs queued or running."""
    last_outcome: str = ""
    last_run: str = ""
    last_at: float = 0.0
    buckets: list[charts.Bucket] = field(default_factory=list)
    chart: Markup = Markup("")

    @property
    def last_time(self) -> str:
        return iso(self.last_at)

    @property
    def success_rate(self) -> float | None:
        counted = sum(self.counts[o] for o in charts.COUNTED)
        return self.counts["success"] / counted if counted else None


def summarize(states: Iterable[Mapping[str, Any]], now: float) -> tuple[list[Standing], charts.Span]:
    """Standings by rule name, and the span their charts share (from the oldest run read)."""
    states = list(states)
    oldest = min((s.get("queuedAt") or now for s in states), default=None)
    span = charts.span_for(oldest, now)
    found: dict[str, Standing] = {}
    finished: dict[str, list[tuple[float, str]]] = {}
    for state in states:
        rule = str(state.get("rule") or "-")
        standing = found.setdefault(rule, Standing(rule))
        standing.matches += 1
        done = state.get("state") == "finished"
        outcome = str(state.get("outcome") or "error") if done else "unfinished"
        standing.counts[outcome] += 1
        queued = state.get("queuedAt") or 0.0
        if queued >= standing.last_at:
            standing.last_at, standing.last_run, standing.last_outcome = queued, str(state.get("runId", "")), outcome
        if done:
            finished.setdefault(rule, []).append((state.get("finishedAt") or queued, outcome))
    for rule, standing in found.items():
        standing.buckets = charts.bucketize(finished.get(rule, []), now, span)
        standing.chart = charts.svg(standing.buckets, rule)
    return sorted(found.values(), key=lambda s: s.rule), span
