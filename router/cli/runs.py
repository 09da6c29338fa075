"""``runs list``, ``runs show`` and ``runs retry``: what the router did, from the bus.

``runs list`` also shows what run policies decided (the POLICY column: debouncing until T, replaced
by run X, rate-limited until T, ...) and lists partial correlation joins as ``waiting`` rows naming
the events still missing, so every matched event can be accounted for.
"""

from __future__ import annotations

import json
import time

from router import errors
from router.cli import client
from router.config.settings import Settings
from router.engine import queries


def _when(timestamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp)) if timestamp else "-"


async def list_runs(settings: Settings, as_json: bool, rule: str | None) -> int:
    nc = await client.connect(settings)
    try:
        states, joins = await queries.list_runs(nc.jetstream(), settings, rule)
    finally:
        await nc.close()
    if as_json:
        for state in states:
            print(json.dumps({**state, "policyNote": policy_note(state)}))
        for join in joins:
            print(json.dumps({"join": join["id"], "rule": join["rule"], "state": "waiting", "key": join["key"],
                              "arrived": sorted(join["events"]), "missing": join["missing"],
                              "expires": join["expires"]}))
        return 0
    print(f"{'RUN':32}  {'RULE':24}  {'STATE':8}  {'OUTCOME':8}  {'QUEUED':19}  {'EVENT':40}  POLICY")
    for s in states:
        event = f"{s.get('event', {}).get('type', '-')} {s.get('event', {}).get('id', '')}"
        print(f"{s['runId']:32}  {s.get('rule', '-')[:24]:24}  {s.get('state', '-'):8}  {s.get('outcome', '-'):8}  "
              f"{_when(s.get('queuedAt')):19}  {event[:40]:40}  {policy_note(s)}")
    for j in joins:
        print(f"{j['id']:32}  {j['rule'][:24]:24}  {'waiting':8}  {'-':8}  {_when(j['started']):19}  "
              f"{'key ' + j['key']:40.40}  waiting for correlation: missing {', '.join(j['missing'])} "
              f"(expires {_when(j['expires'])})")
    return 0


def policy_note(state: dict) -> str:
    return queries.policy_note(state, _when)


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
        raise errors.ConfigError(f"no run {run_id!r} (see `trigger-router runs list`)")
    print(json.dumps(state, indent=2))
    return 0
