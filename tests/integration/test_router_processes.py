"""Router processes as users run them: killed mid-run, and two sharing the work."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import nats
import pytest

from router.bus import connection as bus
from router.config import settings as settings_mod
from router.engine import runs
from router.model import events

CLI = [sys.executable, "-m", "router.cli", "serve"]


def rule_file(tmp_path, command: list[str]) -> str:
    path = tmp_path / "rules.yaml"
    path.write_text(textwrap.dedent(f"""
        kind: TriggerRule
        metadata: {{name: sleepy}}
        spec:
          filters: [{{exact: {{type: com.example.deployed}}}}]
          action:
            exec:
              command: {json.dumps(command)}
    """))
    return str(path)


def start_router(nats_url: str, rules: str, port: int, tmp_path, name: str) -> subprocess.Popen:
    env = {**os.environ, "TRIGGER_ROUTER_NATS__URL": nats_url, "TRIGGER_ROUTER_HTTP__PORT": str(port),
           "TRIGGER_ROUTER_RULES__PATHS": json.dumps([rules]), "TRIGGER_ROUTER_ROUTER__ACK_WAIT": "2s",
           "TRIGGER_ROUTER_STATE_DIR": str(tmp_path / name)}
    with open(tmp_path / f"{name}.log", "a") as log:  # the child keeps its own descriptor
        return subprocess.Popen(CLI, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop_router(process: subprocess.Popen, sig=signal.SIGTERM) -> None:
    if process.poll() is None:
        os.killpg(process.pid, sig)
        process.wait(30)


async def publish_events(nats_url: str, count: int, prefix: str) -> None:
    nc = await nats.connect(nats_url)
    the_bus = bus.Bus(settings_mod.NatsSettings(url=nats_url), settings_mod.BusSettings())
    the_bus.nc, the_bus.js = nc, nc.jetstream()
    await bus.ensure_streams(the_bus.js, settings_mod.BusSettings())
    await the_bus.publish_all([events.make({"id": f"{prefix}-{i}", "source": "/test", "type": "com.example.deployed"},
                                           {"n": i}) for i in range(count)])
    await nc.close()


async def finished_outcomes(nats_url: str, expected: int, timeout: float) -> list[dict]:
    """Every finished outcome stored when ``expected`` are there (or the timeout passed)."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                info = await js.stream_info("TR_OUTCOMES", subjects_filter="tr.outcomes.finished.>")
                stored = sum((info.state.subjects or {}).values())
            except nats.js.errors.NotFoundError:
                stored = 0
            if stored >= expected:
                break
            await asyncio.sleep(0.5)
        sub = await js.subscribe("tr.outcomes.finished.>", ordered_consumer=True, stream="TR_OUTCOMES")
        found = []
        while True:
            try:
                found.append(json.loads((await sub.next_msg(timeout=1)).data))
            except nats.errors.TimeoutError:
                return found
    finally:
        await nc.close()


async def run_state(nats_url: str, run: str) -> dict | None:
    nc = await nats.connect(nats_url)
    try:
        return await (await runs.RunStates.open(nc.jetstream(), settings_mod.Settings())).get(run)
    except nats.js.errors.Error:
        return None
    finally:
        await nc.close()


async def test_router_killed_mid_run_finishes_it_exactly_once(nats_server, tmp_path, free_port):
    rules = rule_file(tmp_path, [sys.executable, "-c", "import time; time.sleep(3)"])
    first = start_router(nats_server.url, rules, free_port, tmp_path, "first")
    second = None
    try:
        await publish_events(nats_server.url, 1, "kill")
        run = runs.run_id("sleepy", events.make({"id": "kill-0", "source": "/test", "type": "x"}))
        for _ in range(100):
            state = await run_state(nats_server.url, run)
            if state and state.get("state") == "running":
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail(f"the run never started; router log:\n{(tmp_path / 'first.log').read_text()}")
        stop_router(first, signal.SIGKILL)
        second = start_router(nats_server.url, rules, free_port, tmp_path, "second")
        # ack_wait is 2s: the run is redelivered to the second router; wait well past one more ack_wait.
        finished = await finished_outcomes(nats_server.url, 1, timeout=30)
        await asyncio.sleep(5)
        finished = await finished_outcomes(nats_server.url, 1, timeout=1)
    finally:
        stop_router(first)
        if second:
            stop_router(second)
    assert [f["subject"]["id"] for f in finished] == [run]
    assert finished[0]["subject"]["content"]["outcome"] == "success"
    state = await run_state(nats_server.url, run)
    assert state["state"] == "finished" and state["deliveries"] >= 2


async def test_two_routers_share_500_events_exactly_once(nats_server, tmp_path):
    rules = rule_file(tmp_path, ["true"])
    ports = []
    for _ in range(2):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
    routers = [start_router(nats_server.url, rules, port, tmp_path, f"router{i}") for i, port in enumerate(ports)]
    try:
        await asyncio.sleep(1.5)  # both subscribed before the burst, so both get a share
        await publish_events(nats_server.url, 500, "burst")
        finished = await finished_outcomes(nats_server.url, 500, timeout=180)
        await asyncio.sleep(3)
        finished = await finished_outcomes(nats_server.url, 500, timeout=1)
    finally:
        for router in routers:
            stop_router(router)
    run_ids = [f["subject"]["id"] for f in finished]
    assert len(run_ids) == 500 and len(set(run_ids)) == 500
    assert {f["subject"]["content"]["outcome"] for f in finished} == {"success"}
    nc = await nats.connect(nats_server.url)
    states = await (await runs.RunStates.open(nc.jetstream(), settings_mod.Settings())).all()
    await nc.close()
    assert len(states) == 500
    assert len({s["worker"] for s in states}) == 2, "both router processes executed runs"
