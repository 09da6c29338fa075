"""Run leases against a real nats-server: claims race, renewals fence, stored results are final.

The executor-level tests count *executions* (an exec action appends its run id to a file), not
outcome ids, which JetStream deduplicates whatever the code does.
"""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
import time

import nats
import pytest

from router.bus.connection import Bus
from router.engine import lease, runs
from router.engine.executor import Executor
from router.engine.routing import EventRouter
from router.model import events
from router.plugins import catalog
from router.rules import loading as rules
from router.rules.matching import Matcher
from tests.integration.conftest import make_settings


@pytest.fixture
async def bus(nats_server):
    settings = make_settings(nats_server.url, ROUTER__ACK_WAIT="2s")
    the_bus = Bus(settings.nats, settings.bus, [runs.runs_stream_config(settings)])
    await the_bus.start(nats_server.url)
    await the_bus.wait_ready(15)
    yield the_bus, settings
    await the_bus.close()


async def queued(states: runs.RunStates, run: str) -> tuple[dict, int]:
    assert await states.create(run, {"runId": run, "state": "queued"}) is not None
    entry = await states.entry(run)
    return entry.value, entry.revision


async def test_two_claims_on_one_revision_have_one_winner(bus):
    the_bus, settings = bus
    states = await runs.RunStates.open(the_bus.js, settings)
    state, revision = await queued(states, "r1")
    first, second = await asyncio.gather(
        lease.claim(states, "r1", state, revision, worker="a", duration=30, deliveries=1),
        lease.claim(states, "r1", state, revision, worker="b", duration=30, deliveries=1))
    assert sorted([isinstance(first, lease.Lease), isinstance(second, lease.Lease)]) == [False, True]
    entry = await states.entry("r1")
    held = await lease.claim(states, "r1", entry.value, entry.revision, worker="c", duration=30, deliveries=2)
    assert isinstance(held, lease.Held) and held.worker in ("a", "b") and 29 < held.wait <= 30


async def test_an_expired_lease_is_taken_over_and_the_old_holder_is_fenced(bus):
    the_bus, settings = bus
    states = await runs.RunStates.open(the_bus.js, settings)
    state, revision = await queued(states, "r2")
    old = await lease.claim(states, "r2", state, revision, worker="old", duration=0.2, deliveries=1)
    await asyncio.sleep(0.3)  # the lease is a wall-clock deadline: only time can expire it
    entry = await states.entry("r2")
    new = await lease.claim(states, "r2", entry.value, entry.revision, worker="new", duration=30, deliveries=2)
    assert isinstance(new, lease.Lease) and new.state["takenOver"] == 1
    await old.renew()
    assert old.lost.done() and "claimed by new" in old.lost.result()
    assert await old.finish({"outcome": "success"}) is None, "a fenced holder cannot store a result"
    stored = await new.finish({"outcome": "failure"})
    assert stored["state"] == "finished" and "lease" not in stored
    assert (await states.get("r2"))["outcome"] == "failure"


async def test_a_result_is_stored_after_an_outage_longer_than_the_lease(nats_server, bus):
    """The action finished while NATS was away; no one could claim the run, so its result counts."""
    the_bus, settings = bus
    states = await runs.RunStates.open(the_bus.js, settings)
    state, revision = await queued(states, "r3")
    held = await lease.claim(states, "r3", state, revision, worker="me", duration=0.5, deliveries=1)
    nats_server.stop()
    try:
        await asyncio.sleep(0.6)
        await held.renew()  # cannot reach NATS, and the lease has expired meanwhile
        assert held.lost.done() and "could not renew" in held.lost.result()
        storing = asyncio.create_task(held.finish({"outcome": "success"}))
        await asyncio.sleep(0.5)
        assert not storing.done(), "the result waits for NATS instead of being dropped"
    finally:
        nats_server.start()
    stored = await asyncio.wait_for(storing, 30)
    assert stored["outcome"] == "success"
    assert (await states.get("r3"))["state"] == "finished"


RULE = """
kind: TriggerRule
metadata: {{name: counted}}
spec:
  filters: [{{exact: {{type: com.example.deployed}}}}]
  action:
    exec:
      command: {command}
      tailBytes: 1048576
"""


def counting_command(log, extra: str = "") -> str:
    script = f"import os; open({str(log)!r}, 'a').write(os.environ['TRIGGER_ROUTER_RUN_ID'] + '\\n'); {extra}"
    return json.dumps([sys.executable, "-c", script])


async def start(the_bus, settings, tmp_path, command):
    path = tmp_path / "rules.yaml"
    path.write_text(textwrap.dedent(RULE.format(command=command)))
    plugins = catalog.load()
    states = await runs.RunStates.open(the_bus.js, settings)
    router = EventRouter(the_bus, settings, Matcher(rules.load([str(path)], plugins.actions)), states)
    executor = Executor(the_bus, settings, plugins, states)
    return states, [asyncio.create_task(router.run()), asyncio.create_task(executor.run())]


async def finished_count(nats_url: str, run: str) -> int:
    nc = await nats.connect(nats_url)
    try:
        info = await nc.jetstream().stream_info("TR_OUTCOMES", subjects_filter="tr.outcomes.finished.>")
        return sum((info.state.subjects or {}).values())
    finally:
        await nc.close()


async def wait_finished(states: runs.RunStates, run: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = await states.get(run)
        if state and state.get("state") == "finished":
            return state
        await asyncio.sleep(0.1)
    raise AssertionError(f"run {run} did not finish: {await states.get(run)}")


async def test_a_stored_result_is_announced_and_the_action_never_runs_again(bus, tmp_path, nats_server):
    """A crash after storing the result and before ``finished``: redelivery republishes, no rerun."""
    the_bus, settings = bus
    log = tmp_path / "executions"
    event = events.make({"id": "stored-1", "source": "/test", "type": "com.example.deployed"}, {})
    run = runs.run_id("counted", event)
    states = await runs.RunStates.open(the_bus.js, settings)
    # What a killed executor leaves behind: the result stored, ``finished`` never published.
    await states.create(run, {"runId": run, "rule": "counted", "state": "finished", "outcome": "failure",
                              "reason": "exit code 3", "executed": True, "attempts": 1, "finishedAt": time.time()})
    states, tasks = await start(the_bus, settings, tmp_path, counting_command(log))
    try:
        await the_bus.publish(event)
        deadline = time.monotonic() + 30
        while await finished_count(nats_server.url, run) < 1:
            assert time.monotonic() < deadline, "finished was never republished"
            await asyncio.sleep(0.1)
        other = events.make({"id": "stored-2", "source": "/test", "type": "com.example.deployed"}, {})
        await the_bus.publish(other)  # a later run finishing proves the first was not still pending
        await wait_finished(states, runs.run_id("counted", other))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    executed = log.read_text().split()
    assert executed == [runs.run_id("counted", other)], "the run whose result was stored ran again"
    assert (await states.get(run))["outcome"] == "failure"


async def test_an_action_output_over_the_bus_limit_ends_its_run_once(bus, tmp_path, nats_server):
    """Before: a 1 MiB tail made the state and ``finished`` unstorable, and the run looped forever."""
    the_bus, settings = bus
    log = tmp_path / "executions"
    command = counting_command(log, "import sys; sys.stdout.write('o' * 1048576); sys.stderr.write('e' * 1048576)")
    states, tasks = await start(the_bus, settings, tmp_path, command)
    event = events.make({"id": "chatty", "source": "/test", "type": "com.example.deployed"}, {})
    run = runs.run_id("counted", event)
    try:
        await the_bus.publish(event)
        state = await wait_finished(states, run, timeout=60)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert state["outcome"] == "success"
    assert state["checks"][-1]["name"] == "result size", "the cut is said, not silent"
    assert len(state["checks"][0]["stdoutTail"]) < 300_000
    assert log.read_text().split() == [run]
    assert await finished_count(nats_server.url, run) == 1
