"""Run policies end to end: real nats-server, real router and executor, real ``exec`` processes.

Each test publishes events straight to JetStream (as the HTTP edge would) and reads the run states
back from the state bucket, the way ``trigger-router runs list`` does.
"""

from __future__ import annotations

import asyncio
import textwrap
import time

import pytest

from router import errors
from router.cli import runs as run_commands
from router.engine import deadletters, runs
from router.engine.executor import Executor
from router.engine.routing import EventRouter
from router.model import events
from router.plugins import actions, catalog
from router.rules import loading as rules
from router.rules.matching import Matcher
from tests.integration.test_routing import stop

TYPE = "com.example.deployed"
SLEEP = '["/bin/sh", "-c", "sleep \\"$0\\"", "{{ data.sleep }}"]'


def rule(policy: str, command: str = SLEEP, name: str = "deploy-check", action: str | None = None) -> str:
    action = action or f"exec: {{command: {command}}}"
    return textwrap.dedent(f"""
        kind: TriggerRule
        metadata: {{name: {name}}}
        spec:
          filters: [{{exact: {{type: {TYPE}}}}}]
          policy: {policy}
          action: {{{action}}}
    """)


async def start(edge, tmp_path, rule_yaml: str, plugins: catalog.Catalog | None = None, replicas: int = 1):
    path = tmp_path / "rules.yaml"
    path.write_text(rule_yaml)
    plugins = plugins or catalog.load()
    settings = edge.settings
    await edge.bus.js.add_stream(runs.runs_stream_config(settings))
    states = await runs.RunStates.open(edge.bus.js, settings)
    tasks = []
    for _ in range(replicas):
        router = EventRouter(edge.bus, settings, Matcher(rules.load([str(path)], plugins.actions)), states)
        tasks += [asyncio.create_task(router.run()), asyncio.create_task(Executor(edge.bus, settings, plugins, states).run())]
    return tasks


async def publish(edge, event_id: str, **data) -> str:
    """Publish one event; returns the run id the rule ``deploy-check`` gives it."""
    event = events.make({"id": event_id, "source": "/test", "type": TYPE}, data)
    await edge.bus.publish(event)
    return runs.run_id("deploy-check", event)


async def states_when(edge, done, timeout: float = 20.0) -> dict[str, dict]:
    """Run states by run id, once ``done(states)`` holds."""
    bucket = await runs.RunStates.open(edge.bus.js, edge.settings)
    deadline = time.monotonic() + timeout
    while True:
        found = {s["runId"]: s for s in await bucket.all()}
        if done(found):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached; states: {found}")
        await asyncio.sleep(0.1)


def finished(*run_ids):
    return lambda s: all(s.get(r, {}).get("state") == "finished" for r in run_ids)


async def test_replace_cancels_the_running_run_and_the_new_one_succeeds(edge, tmp_path):
    tasks = await start(edge, tmp_path, rule('{concurrency: {key: "{{ data.app }}", mode: replace}}'))
    try:
        first = await publish(edge, "e1", app="shop", sleep="30")
        other = await publish(edge, "o1", app="other", sleep="0")
        await states_when(edge, lambda s: s.get(first, {}).get("state") == "running")
        began = time.monotonic()
        second = await publish(edge, "e2", app="shop", sleep="0")
        states = await states_when(edge, finished(first, second, other))
    finally:
        await stop(tasks)
    assert time.monotonic() - began < 10, "the replaced run's sleep process was not killed"
    assert states[first]["outcome"] == "cancel" and states[first]["reason"] == f"replaced by run {second}"
    assert states[first]["decision"] == "replaced"
    assert states[second]["outcome"] == "success" and states[second]["replaces"] == [first]
    assert states[other]["outcome"] == "success", "another key is not affected"


async def test_replace_by_an_older_event_leaves_the_newer_run_in_place(edge, tmp_path):
    """Arrival order is the events stream's order, whatever order the routers decide in."""
    tasks = await start(edge, tmp_path, rule('{concurrency: {key: "{{ data.app }}", mode: replace}, delay: 1s}'),
                        replicas=2)
    try:
        ids = [await publish(edge, f"e{i}", app="shop", sleep="0") for i in range(6)]
        states = await states_when(edge, finished(*ids))
    finally:
        await stop(tasks)
    assert [states[i]["outcome"] for i in ids] == ["cancel"] * 5 + ["success"]


async def test_forbid_drops_new_runs_while_one_is_active(edge, tmp_path):
    tasks = await start(edge, tmp_path, rule('{concurrency: {key: "{{ data.app }}", mode: forbid}}'))
    try:
        first = await publish(edge, "e1", app="shop", sleep="1.5")
        await states_when(edge, lambda s: s.get(first, {}).get("state") == "running")
        second = await publish(edge, "e2", app="shop", sleep="0")
        await states_when(edge, finished(first, second))
        third = await publish(edge, "e3", app="shop", sleep="0")
        states = await states_when(edge, finished(third))
    finally:
        await stop(tasks)
    assert states[first]["outcome"] == "success"
    assert states[second]["outcome"] == "cancel" and states[second]["decision"] == "forbidden"
    assert states[second]["reason"] == f"forbidden: run {first} is active for key 'shop'"
    assert states[third]["outcome"] == "success", "the slot is free again once the active run finished"


async def test_queue_runs_one_after_another_in_arrival_order(edge, tmp_path):
    tasks = await start(edge, tmp_path, rule('{concurrency: {key: "{{ data.app }}", mode: queue}}'), replicas=2)
    try:
        ids = [await publish(edge, f"e{i}", app="shop", sleep=s) for i, s in enumerate(["1", "0.3", "0"])]
        states = await states_when(edge, finished(*ids))
    finally:
        await stop(tasks)
    ordered = [states[i] for i in ids]
    assert [s["outcome"] for s in ordered] == ["success"] * 3
    for before, after in zip(ordered, ordered[1:]):
        assert before["finishedAt"] <= after["startedAt"], "queued runs overlapped or ran out of order"


async def test_debounce_runs_once_for_the_last_event_of_a_burst(edge, tmp_path):
    tasks = await start(edge, tmp_path, rule('{concurrency: {key: "{{ data.app }}"}, debounce: 1s}'))
    try:
        ids = [await publish(edge, f"e{i}", app="shop", sleep="0") for i in range(10)]
        lone = await publish(edge, "lone", app="other", sleep="0")
        states = await states_when(edge, finished(*ids, lone))
    finally:
        await stop(tasks)
    last = ids[-1]
    assert states[last]["outcome"] == "success" and states[last]["event"]["id"] == "e9"
    assert states[last]["startedAt"] - states[last]["queuedAt"] >= 0.9
    for index, run in enumerate(ids[:-1]):
        assert states[run]["outcome"] == "cancel" and states[run]["decision"] == "debounced"
        newer = states[run]["reason"].removeprefix("debounced by run ")
        assert newer in ids[index + 1:], "debounced by a run that is not newer"
    assert states[lone]["outcome"] == "success"


async def test_dedupe_drops_a_different_event_with_the_same_key(edge, tmp_path):
    tasks = await start(edge, tmp_path, rule('{dedupe: {key: "{{ data.digest }}", window: 10m}}'))
    try:
        first = await publish(edge, "e1", digest="sha256:aa", sleep="0")
        await states_when(edge, finished(first))
        again = await publish(edge, "e2", digest="sha256:aa", sleep="0")
        other = await publish(edge, "e3", digest="sha256:bb", sleep="0")
        states = await states_when(edge, finished(again, other))
    finally:
        await stop(tasks)
    assert states[first]["outcome"] == "success" and states[other]["outcome"] == "success"
    assert states[again]["outcome"] == "cancel" and states[again]["decision"] == "deduped"
    assert states[again]["duplicateOf"] == first and "sha256:aa" in states[again]["reason"]


async def test_rate_limit_delays_excess_runs_and_drops_none(edge, tmp_path, capsys):
    tasks = await start(edge, tmp_path, rule('{rateLimit: {rate: 1, per: 0.7s, burst: 1}}'))
    try:
        ids = [await publish(edge, f"e{i}", sleep="0") for i in range(4)]
        await states_when(edge, lambda s: sum(x.get("decision") == "rate-limited" for x in s.values()) == 3)
        await run_commands.list_runs(edge.settings, False, None)
        states = await states_when(edge, finished(*ids))
    finally:
        await stop(tasks)
    assert "rate-limited until" in capsys.readouterr().out
    # The k-th run may start no earlier than k intervals after the first was routed.
    starts = sorted(states[i]["startedAt"] for i in ids)
    first = min(states[i]["queuedAt"] for i in ids)
    assert all(start - first >= k * 0.7 - 0.05 for k, start in enumerate(starts)), [s - first for s in starts]
    assert [states[i]["outcome"] for i in ids] == ["success"] * 4


class Flaky(actions.Params):
    until: str
    """Fail temporarily until this event id is seen in the retry flag set."""


async def test_exhausted_retries_are_dead_lettered_and_retried_by_hand(edge, tmp_path, capsys):
    healed: set[str] = set()
    calls: list[str] = []
    plugins = catalog.Catalog(actions=dict(catalog.load().actions))

    @plugins.action("flaky", params=Flaky)
    async def flaky(params: Flaky, context: actions.Context) -> actions.Result:
        calls.append(context.run_id)
        if params.until not in healed:
            raise errors.TemporaryError("service unavailable (503)")
        return actions.Result("success", "healed")

    yaml = rule("{retry: {limit: 2, backoff: 0.05s, maxBackoff: 0.1s}}", action='flaky: {until: "{{ id }}"}')
    tasks = await start(edge, tmp_path, yaml, plugins)
    try:
        failed = await publish(edge, "e1")
        states = await states_when(edge, finished(failed))
        assert states[failed]["outcome"] == "error" and states[failed]["attempts"] == 3
        assert "temporary: service unavailable" in states[failed]["reason"]
        dead = await edge.bus.js.get_last_msg("TR_DEADLETTER", f"tr.deadletter.runs.{failed}")
        assert runs.RunRecord.loads(dead.data).event["id"] == "e1"
        assert "service unavailable" in dead.headers["Trigger-Router-Reason"]
        healed.add("e1")
        assert await run_commands.retry_run(edge.settings, failed) == 0
        again = deadletters.retry_id(failed, 1)
        assert capsys.readouterr().out.startswith(again)
        states = await states_when(edge, finished(again))
    finally:
        await stop(tasks)
    assert states[again]["outcome"] == "success" and states[again]["retryOf"] == failed
    assert states[failed]["retriedAs"] == again and states[failed]["retries"] == 1
    assert calls == [failed] * 3 + [again]


async def test_retry_of_a_run_without_dead_letter_is_refused(edge, tmp_path):
    await edge.bus.js.add_stream(runs.runs_stream_config(edge.settings))
    with pytest.raises(errors.ConfigError, match="no dead-letter record"):
        await run_commands.retry_run(edge.settings, "0" * 32)
