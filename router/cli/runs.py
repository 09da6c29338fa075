"""``runs list``, ``runs show`` and ``runs retry``: what the router did, from the bus.

``runs list`` also shows what run policies decided (the POLICY column: debouncing until T, replaced
by run X, rate-limited until T, ...) and lists partial correlation joins as ``waiting`` rows naming
the events still missing, so every matched event can be accounted for. Its columns are as wide as
their content; run ids are cut to 12 characters (``…`` marks a cut) and rules and events to a
readable width unless ``--wide``, which is what to copy ids from. ``--rule``, ``--outcome``,
``--since`` and ``--limit`` (the newest N) select rows. Times are ISO 8601 in UTC (``times``);
``runs show`` and ``--json`` keep the epoch numbers and add ``<key>Iso`` strings beside them.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from typing import Any

from router import errors
from router.cli import client, times
from router.config.settings import Settings
from router.engine import queries

NARROW = {"RUN": 12, "RULE": 24, "EVENT": 40}
"""Column caps without ``--wide``."""
COLUMNS = ("RUN", "RULE", "STATE", "OUTCOME", "QUEUED", "EVENT", "POLICY")


@dataclass(frozen=True)
class Selection:
    """Which rows ``runs list`` shows; every criterion left ``None`` selects everything."""

    rule: str | None = None
    outcome: str | None = None
    since: float | None = None
    """Epoch seconds: runs queued (joins started) at or after."""
    limit: int | None = None
    """The newest N rows, still shown oldest first."""

    @classmethod
    def of(cls, args: argparse.Namespace, now: float | None = None) -> "Selection":
        if args.limit is not None and args.limit < 1:
            raise errors.ConfigError("--limit must be at least 1")
        when = times.since(args.since, time.time() if now is None else now) if args.since else None
        return cls(args.rule, args.outcome, when, args.limit)

    def rows(self, states: list[dict[str, Any]], joins: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Runs and waiting joins (``{"join": ...}``), selected and in the order they began."""
        rows = [s for s in states if self.rule is None or s.get("rule") == self.rule]
        if self.outcome is not None:
            rows = [s for s in rows if s.get("outcome") == self.outcome]
        else:  # a waiting join has no outcome yet
            rows += [{"join": j} for j in joins if self.rule is None or j.get("rule") == self.rule]
        if self.since is not None:
            rows = [r for r in rows if (_began(r) or 0) >= self.since]
        rows.sort(key=lambda r: _began(r) or 0)
        return rows[-self.limit:] if self.limit else rows


def _began(row: dict[str, Any]) -> float | None:
    return row["join"].get("started") if "join" in row else row.get("queuedAt")


def policy_note(state: dict) -> str:
    return queries.policy_note(state, times.iso)


def cells(row: dict[str, Any]) -> list[str]:
    """A row's text, column by column, untruncated."""
    if "join" in row:
        j = row["join"]
        return [j["id"], j["rule"], "waiting", "-", times.iso(j.get("started")), f"key {j['key']}",
                f"waiting for correlation: missing {', '.join(j['missing'])} (expires {times.iso(j.get('expires'))})"]
    event = row.get("event", {})
    return [row["runId"], row.get("rule", "-"), row.get("state", "-"), row.get("outcome", "-"),
            times.iso(row.get("queuedAt")), f"{event.get('type', '-')} {event.get('id', '')}".rstrip(),
            policy_note(row)]


def table(rows: list[list[str]], wide: bool) -> list[str]:
    """Aligned lines: every column as wide as its widest cell (capped unless ``wide``), the last unpadded."""
    if not wide:
        rows = [[_cut(cell, NARROW.get(COLUMNS[i])) for i, cell in enumerate(row)] for row in rows]
    shown = [list(COLUMNS)] + rows
    widths = [max(len(row[i]) for row in shown) for i in range(len(COLUMNS) - 1)]
    return ["  ".join([cell.ljust(width) for cell, width in zip(row, widths)] + [row[-1]]).rstrip()
            for row in shown]


def _cut(text: str, width: int | None) -> str:
    return text if width is None or len(text) <= width else text[:width - 1] + "…"


async def list_runs(settings: Settings, as_json: bool, rule: str | None = None, *,
                    select: Selection | None = None, wide: bool = False) -> int:
    select = select or Selection(rule=rule)
    nc = await client.connect(settings)
    try:
        states, joins = await queries.list_runs(nc.jetstream(), settings, select.rule)
    finally:
        await nc.close()
    rows = select.rows(states, joins)
    if as_json:
        for row in rows:
            if "join" in row:
                j = row["join"]
                print(json.dumps(times.with_iso({"join": j["id"], "rule": j["rule"], "state": "waiting",
                                                 "key": j["key"], "arrived": sorted(j["events"]),
                                                 "missing": j["missing"], "expires": j["expires"]})))
            else:
                print(json.dumps(times.with_iso({**row, "policyNote": policy_note(row)})))
        return 0
    for line in table([cells(row) for row in rows], wide):
        print(line)
    return 0


async def retry_run(settings: Settings, run_id: str) -> int:
    """Queue a new run from a dead-lettered one; prints the new run id."""
    bus = await client.open_bus(settings, [queries.runs_stream_config(settings)])
    try:
        again, number, reason = await queries.retry_run(bus, settings, run_id)
    finally:
        await bus.close()
    print(f"{again}  (retry #{number} of {run_id}, which failed with: {reason[:200]})")
    return 0


async def show_run(settings: Settings, run_id: str) -> int:
    nc = await client.connect(settings)
    try:
        state = await queries.get_run(nc.jetstream(), settings, run_id)
    finally:
        await nc.close()
    if state is None:
        raise errors.ConfigError(f"no run {run_id!r} (see `trigger-router runs list --wide`)")
    print(json.dumps(times.with_iso(state), indent=2))
    return 0
