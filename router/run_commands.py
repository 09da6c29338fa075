"""``runs list``, ``runs show`` and ``outcomes tail``: what the router did, from the bus."""

from __future__ import annotations

import json
import time

from router import errors, runs, tail_send
from router.settings import Settings


def _when(timestamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp)) if timestamp else "-"


async def list_runs(settings: Settings, as_json: bool, rule: str | None) -> int:
    nc = await tail_send.connect(settings)
    try:
        states = await (await runs.RunStates.open(nc.jetstream(), settings)).all()
    finally:
        await nc.close()
    states = [s for s in states if rule is None or s.get("rule") == rule]
    if as_json:
        for state in states:
            print(json.dumps(state))
        return 0
    print(f"{'RUN':32}  {'RULE':24}  {'STATE':8}  {'OUTCOME':8}  {'QUEUED':19}  EVENT")
    for s in states:
        print(f"{s['runId']:32}  {s.get('rule', '-')[:24]:24}  {s.get('state', '-'):8}  {s.get('outcome', '-'):8}  "
              f"{_when(s.get('queuedAt')):19}  {s.get('event', {}).get('type', '-')} {s.get('event', {}).get('id', '')}")
    return 0


async def show_run(settings: Settings, run_id: str) -> int:
    nc = await tail_send.connect(settings)
    try:
        state = await (await runs.RunStates.open(nc.jetstream(), settings)).get(run_id)
    finally:
        await nc.close()
    if state is None:
        raise errors.ConfigError(f"no run {run_id!r} (see `trigger-router runs list`)")
    print(json.dumps(state, indent=2))
    return 0
