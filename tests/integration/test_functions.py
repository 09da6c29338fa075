"""In-process functions (``action: function``) end to end: real nats-server, real router and executor.

The functions are ``tests/fixtures/functions/trfixtures.py`` (that directory is ``functions.paths``);
each writes a line per effect to a file, and the tests count those lines, not the run's own account.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from pathlib import Path

import pytest

from router.engine import runs
from router.model import event_types, events
from router.plugins import catalog
from tests.integration.conftest import make_settings, serve_edge
from tests.integration.test_correlation import published, rolled_out, settle
from tests.integration.test_policies import start, states_when
from tests.integration.test_routing import stop

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "functions"
TYPE = "com.example.deployed"


@pytest.fixture
async def edge(nats_server, tmp_path):
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "api-token").write_text("s3cr3t-t0ken\n")
    settings = make_settings(nats_server.url, FUNCTIONS__PATHS=json.dumps([str(FIXTURES)]),
                             FUNCTIONS__SECRETS_DIR=str(secrets))
    catalog.load().configure(settings)
    async with serve_edge(nats_server.url, settings) as served:
        yield served


def rule(ref: str, log: Path, policy: str = "{}", name: str = "fn-check", **params) -> str:
    action = {"function": {"ref": f"trfixtures:{ref}", "params": {"log": str(log), **params}}}
    return json.dumps({"kind": "TriggerRule", "metadata": {"name": name},
                       "spec": {"filters": [{"exact": {"type": TYPE}}], "policy": json.loads(policy) if policy != "{}"
                                else {}, "action": action}})


async def publish(edge, event_id: str, rule_name: str = "fn-check", **data) -> str:
    event = events.make({"id": event_id, "source": "/test", "type": TYPE}, {"n": 1, **data})
    await edge.bus.publish(event)
    return runs.run_id(rule_name, event)


def lines(log: Path) -> Counter:
    """``(what, attempt)`` -> how many times the function wrote it."""
    try:
        return Counter((parts[0], int(parts[2])) for parts in map(str.split, log.read_text().splitlines()))
    except FileNotFoundError:
        return Counter()


def finished(*run_ids):
    return lambda s: all(s.get(r, {}).get("state") == "finished" for r in run_ids)


async def run_one(edge, tmp_path, ref: str, policy: str = "{}", **params) -> tuple[dict, Counter]:
    log = tmp_path / "effects.log"
    tasks = await start(edge, tmp_path, rule(ref, log, policy, **params))
    try:
        run = await publish(edge, "e1")
        states = await states_when(edge, finished(run))
    finally:
        await stop(tasks)
    return states[run], lines(log)


async def test_success_with_its_checks_in_the_outcome(edge, tmp_path):
    state, effects = await run_one(edge, tmp_path, "passes")
    assert state["outcome"] == "success" and state["reason"] == "saw 1" and state["attempts"] == 1
    assert state["checks"] == [{"name": "n is known", "passed": True, "detail": "1"}]
    assert effects == {("ran", 1): 1}


async def test_failure_carries_the_functions_reason(edge, tmp_path):
    state, effects = await run_one(edge, tmp_path, "fails")
    assert state["outcome"] == "failure" and state["reason"] == "version 1.2 is served, 1.3 was deployed"
    assert state["severity"] == "high" and state["checks"][0]["error"] == "1.2 != 1.3"
    assert effects == {("ran", 1): 1}, "a failure is an answer: not retried"


async def test_temporary_error_is_retried_under_policy_retry_then_succeeds(edge, tmp_path):
    state, effects = await run_one(edge, tmp_path, "flaky", '{"retry": {"limit": 3, "backoff": "50ms"}}', fail=2)
    assert state["outcome"] == "success" and state["attempts"] == 3
    assert effects == {("ran", 1): 1, ("ran", 2): 1, ("ran", 3): 1}


async def test_permanent_error_ends_error_without_retry(edge, tmp_path):
    state, effects = await run_one(edge, tmp_path, "refuses", '{"retry": {"limit": 3, "backoff": "50ms"}}')
    assert state["outcome"] == "error" and state["reason"] == "the manifest names no image"
    assert effects == {("ran", 1): 1}


async def test_timeout_cancels_the_functions_task(edge, tmp_path):
    began = time.monotonic()
    state, effects = await run_one(edge, tmp_path, "hangs", '{"timeout": "1s"}')
    assert state["outcome"] == "error" and state["reason"] == "timed out after 1s (policy.timeout)"
    assert time.monotonic() - began < 15
    assert effects == {("began", 1): 1, ("cancelled", 1): 1}, "the finally block ran: the task was cancelled"
    stray = [t for t in asyncio.all_tasks() if any(n in repr(t.get_coro()) for n in ("hangs", "run_function"))]
    assert stray == []


async def test_a_plain_function_runs_on_a_worker_thread(edge, tmp_path):
    state, effects = await run_one(edge, tmp_path, "blocking")
    assert state["outcome"] == "success" and state["reason"] == "sync ok"
    assert effects == {("ran", 1): 1}


async def test_an_unexpected_exception_ends_error_and_the_next_run_still_succeeds(edge, tmp_path):
    log = tmp_path / "effects.log"
    rules_yaml = "\n---\n".join([rule("crashes", log, name="crashing"),
                               rule("passes", log, name="healthy").replace(TYPE, TYPE + ".later")])
    tasks = await start(edge, tmp_path, rules_yaml)
    try:
        crashed = await publish(edge, "e1", "crashing")
        await states_when(edge, finished(crashed))
        later = events.make({"id": "e2", "source": "/test", "type": TYPE + ".later"}, {"n": 2})
        await edge.bus.publish(later)
        states = await states_when(edge, finished(crashed, runs.run_id("healthy", later)))
    finally:
        await stop(tasks)
    assert states[crashed]["outcome"] == "error"
    assert states[crashed]["reason"].startswith("function trfixtures:crashes raised KeyError: 'missing' (at trfixtures.py:")
    assert states[runs.run_id("healthy", later)]["outcome"] == "success"
    assert lines(log) == {("ran", 1): 2}


async def test_replace_cancels_a_running_function(edge, tmp_path):
    log = tmp_path / "effects.log"
    tasks = await start(edge, tmp_path, rule("hangs", log, '{"concurrency": {"key": "{{ data.app }}", "mode": "replace"}}',
                                             sleep="{{ data.sleep }}"))
    try:
        first = await publish(edge, "e1", app="shop", sleep=30)
        await states_when(edge, lambda s: s.get(first, {}).get("state") == "running")
        began = time.monotonic()
        second = await publish(edge, "e2", app="shop", sleep=0)
        states = await states_when(edge, finished(first, second))
    finally:
        await stop(tasks)
    assert time.monotonic() - began < 10
    assert states[first]["outcome"] == "cancel" and states[first]["reason"] == f"replaced by run {second}"
    assert states[second]["outcome"] == "success"
    assert lines(log) == {("began", 1): 2, ("cancelled", 1): 1, ("done", 1): 1}


async def test_a_correlated_run_sees_both_joined_events(edge, tmp_path):
    log = tmp_path / "effects.log"
    rule_yaml = json.dumps({"kind": "TriggerRule", "metadata": {"name": "joined"}, "spec": {
        "correlate": {"key": "{{ data.images[0].digest }}", "within": "5m", "require": [
            {"name": "published", "filters": [{"exact": {"type": event_types.ARTIFACT_PUBLISHED}}],
             "key": "{{ data.customData.digest }}"},
            {"name": "deployed", "filters": [{"exact": {"type": "io.k8s.deployment.rollout_completed"}}]}]},
        "action": {"function": {"ref": "trfixtures:joined", "params": {"log": str(log)}}}}})
    tasks = await start(edge, tmp_path, rule_yaml)
    try:
        await edge.bus.publish(published(1, "p1"))
        await edge.bus.publish(rolled_out(1, "r1"))
        states = await states_when(edge, lambda s: any(x.get("state") == "finished" for x in s.values()))
        await settle(edge.bus.js)
    finally:
        await stop(tasks)
    [state] = states.values()
    assert state["outcome"] == "success"
    assert state["reason"] == ("deployed:io.k8s.deployment.rollout_completed "
                               f"published:{event_types.ARTIFACT_PUBLISHED}"), state
    assert lines(log) == {(f"joined:deployed=r1,published={published(1, 'p1').id}", 1): 1}


async def test_secrets_are_read_by_name_and_masked_in_outcome_events_and_logs(edge, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    log = tmp_path / "effects.log"
    tasks = await start(edge, tmp_path, rule("uses_secret", log))
    try:
        run = await publish(edge, "e1")
        states = await states_when(edge, finished(run))
        stored = await edge.stored()
    finally:
        await stop(tasks)
    assert states[run]["outcome"] == "failure" and states[run]["reason"] == "the API refused token ***"
    [follow_up] = [e for e in stored if e.type == "com.example.verified"]
    assert follow_up.json() == {"token": "***", "ok": True} and follow_up.source == "/trigger-router/rules/fn-check"
    assert "calling the API with ***" in caplog.text and "s3cr3t" not in caplog.text


async def test_a_retried_attempts_follow_up_event_is_published_once(edge, tmp_path):
    state, effects = await run_one(edge, tmp_path, "publishes_then_flakes", '{"retry": {"limit": 2, "backoff": "50ms"}}')
    follow_ups = [e for e in await edge.stored() if e.type == "com.example.smoke.passed"]
    assert state["outcome"] == "success" and effects == {("ran", 1): 1, ("ran", 2): 1}
    assert len(follow_ups) == 1 and follow_ups[0].json() == {"attempt": 1} and follow_ups[0].subject == "e1"
