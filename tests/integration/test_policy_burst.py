"""5,000 events over 100 keys through two router processes with ``replace`` and ``debounce``.

The claim under test: exactly one final run per key (on the key's last event), and every event
accounted for in ``runs list``, as the one successful run or a run cancelled with the reason
(debounced, or replaced by a newer run, some of them while running in the other process).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import textwrap
import time
from collections import Counter

from router.bus.connection import Bus
from router.cli import runs as run_commands
from router.engine import runs
from router.model import events
from tests.integration.conftest import make_settings
from tests.integration.test_router_processes import CLI, stop_router

KEYS = 100
WAVE = 2450  # two waves and one final event per key: 5,000 events
TYPE = "com.example.deployed"


def rule(tmp_path) -> str:
    path = tmp_path / "rules.yaml"
    path.write_text(textwrap.dedent(f"""
        kind: TriggerRule
        metadata: {{name: verify}}
        spec:
          filters: [{{exact: {{type: {TYPE}}}}}]
          policy:
            concurrency: {{key: "{{{{ data.app }}}}", mode: replace}}
            debounce: 1s
          action:
            exec: {{command: ["/bin/sh", "-c", "sleep \\"$0\\"", "{{{{ data.sleep }}}}"]}}
    """))
    return str(path)


def start_router(nats_url: str, rules: str, tmp_path, name: str) -> subprocess.Popen:
    env = {**os.environ, "TRIGGER_ROUTER_NATS__URL": nats_url, "TRIGGER_ROUTER_HTTP__PORT": "0",
           "TRIGGER_ROUTER_RULES__PATHS": json.dumps([rules]), "TRIGGER_ROUTER_ROUTER__ACK_WAIT": "5s",
           "TRIGGER_ROUTER_ROUTER__CONCURRENCY": "64", "TRIGGER_ROUTER_LOG__LEVEL": "warning",
           "TRIGGER_ROUTER_STATE_DIR": str(tmp_path / name)}
    with open(tmp_path / f"{name}.log", "a") as log:
        return subprocess.Popen(CLI, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def burst(prefix: str, count: int, sleep: str) -> list[events.CloudEvent]:
    return [events.make({"id": f"{prefix}-{i}", "source": "/burst", "type": TYPE},
                        {"app": f"app-{i % KEYS}", "sleep": sleep}) for i in range(count)]


async def test_burst_with_replace_and_debounce_leaves_one_run_per_key(nats_server, tmp_path, capsys):
    settings = make_settings(nats_server.url)
    bus = Bus(settings.nats, settings.bus)
    await bus.start(nats_server.url)
    await bus.wait_ready(15)
    path = rule(tmp_path)
    routers = [start_router(nats_server.url, path, tmp_path, f"router-{n}") for n in (1, 2)]
    try:
        began = time.monotonic()
        # Wave 1: the last run of each key becomes due and starts a long check...
        await bus.publish_all(burst("w1", WAVE, "30"))
        bucket = None
        deadline = time.monotonic() + 60
        while True:
            try:
                bucket = bucket or await runs.RunStates.open(bus.js, settings)
                running = [s for s in await bucket.all() if s.get("state") == "running"]
            except Exception:  # the routers create the bucket when they start
                running = []
            if len(running) >= KEYS // 2:  # 64 per process may run at once
                break
            assert time.monotonic() < deadline, "wave 1 never started running"
            await asyncio.sleep(0.2)
        # ... which wave 2 replaces; the final event of each key debounces wave 2, or replaces the
        # wave-2 runs that started because routing lagged more than the debounce period behind.
        await bus.publish_all(burst("w2", WAVE, "30"))
        finals = burst("final", KEYS, "0")
        await bus.publish_all(finals)
        total = 2 * WAVE + KEYS
        while True:
            states = await bucket.all()
            if len(states) == total and all(s.get("state") == "finished" for s in states):
                break
            assert time.monotonic() < deadline + 60, (
                f"{len(states)} runs, {Counter(s.get('state') for s in states)} after {time.monotonic() - began:.0f}s")
            await asyncio.sleep(0.5)
        await run_commands.list_runs(settings, True, None)
    finally:
        for router in routers:
            stop_router(router)
        await bus.close()
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(listed) == total and {s["event"]["id"] for s in listed} == {
        e.id for e in burst("w1", WAVE, "") + burst("w2", WAVE, "") + finals}, "an event is not accounted for"
    winners = [s for s in listed if s["outcome"] == "success"]
    assert sorted(s["event"]["id"] for s in winners) == sorted(e.id for e in finals), "not one final run per key"
    losers = [s for s in listed if s["outcome"] != "success"]
    assert {s["outcome"] for s in losers} == {"cancel"}
    notes = Counter(s["policyNote"].split(" by run ")[0] for s in losers)
    assert set(notes) <= {"debounced", "replaced"} and notes["debounced"] > 0, notes
    # A check that ran its 30 s to the end would have succeeded; these were killed mid-run.
    killed = [s for s in losers if s.get("startedAt") and s["decision"] == "replaced"]
    assert len(killed) >= KEYS // 2, "wave 1's running checks were not cancelled"
    # Both processes had checks killed; the replacing events were routed by either of them.
    assert len({s["worker"] for s in killed}) == 2
    print(f"burst: {total} events in {time.monotonic() - began:.1f}s, {notes}")
