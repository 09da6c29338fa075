"""Event -> rule -> run -> outcomes, end to end through the real HTTP edge and nats-server."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap

import nats
import pytest
from aiohttp import web

from router.engine import runs
from router.engine.executor import Executor
from router.engine.routing import EventRouter
from router.plugins import catalog
from router.rules import loading as rules
from router.rules.matching import Matcher
from tests.integration.test_webhooks import post_github
from tests.support import cdevents_schema, httpserver

PUSH = "com.github.push"


@pytest.fixture
async def target():
    """A service under test: /healthy answers like a good deployment, /broken like a bad one."""
    async def healthy(request):
        return web.json_response({"status": "ok", "version": "1.2.3"})

    async def broken(request):
        return web.json_response({"status": "degraded"}, status=503)

    app = web.Application()
    app.router.add_get("/healthy", healthy)
    app.router.add_get("/broken", broken)
    async with httpserver.serving(app) as url:
        yield f"{url}"


async def start_routing(edge, tmp_path, rule_yaml: str):
    path = tmp_path / "rules.yaml"
    path.write_text(textwrap.dedent(rule_yaml))
    plugins = catalog.load()
    settings = edge.settings
    await edge.bus.js.add_stream(runs.runs_stream_config(settings))
    states = await runs.RunStates.open(edge.bus.js, settings)
    router = EventRouter(edge.bus, settings, Matcher(rules.load([str(path)], plugins.actions)), states)
    executor = Executor(edge.bus, settings, plugins, states)
    return [asyncio.create_task(router.run()), asyncio.create_task(executor.run())]


async def outcomes_for(edge, count: int, timeout: float = 30.0):
    """The first ``count`` outcome events, as CDEvent bodies, validated against the schemas."""
    nc = await nats.connect(edge.nats_url)
    try:
        sub = await nc.jetstream().subscribe("tr.outcomes.>", ordered_consumer=True, stream="TR_OUTCOMES")
        found = []
        try:
            async with asyncio.timeout(timeout):
                while len(found) < count:
                    msg = await sub.next_msg(timeout=timeout)
                    found.append(json.loads(msg.data))
        except TimeoutError:
            raise AssertionError(f"only {len(found)} of {count} outcomes arrived: "
                                 f"{[f['context']['type'] for f in found]}") from None
        return found
    finally:
        await nc.close()


async def stop(tasks):
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


PROBE_RULES = """
kind: TriggerRule
metadata: {{name: probe-{name}}}
spec:
  filters:
    - exact: {{type: com.github.push}}
  action:
    httpProbe:
      checks:
        - url: "{target}/{path}"
          jsonEquals: {{status: ok}}
      deadline: 2s
      interval: 0.5s
"""


@pytest.mark.parametrize("path,outcome", [("healthy", "success"), ("broken", "failure")])
async def test_webhook_to_http_probe_outcomes(edge, tmp_path, target, path, outcome):
    tasks = await start_routing(edge, tmp_path, PROBE_RULES.format(name=path, target=target, path=path))
    try:
        assert (await post_github(edge, "push/payload.json", "delivery-probe")).status == 202
        queued, started, finished = await outcomes_for(edge, 3)
    finally:
        await stop(tasks)
    for cdevent in (queued, started, finished):
        cdevents_schema.validate(cdevent)
        assert cdevent["context"]["links"][0]["target"]["contextId"] == "delivery-probe"
        assert cdevent["subject"]["id"] == runs.run_id(f"probe-{path}", _push_event())
    assert [c["context"]["type"].split(".")[2] for c in (queued, started, finished)] == ["testsuiterun"] * 3
    assert [c["context"]["type"].split(".")[3] for c in (queued, started, finished)] == ["queued", "started", "finished"]
    assert finished["subject"]["content"]["outcome"] == outcome
    checks = finished["customData"]["checks"]
    assert checks[0]["url"] == f"{target}/{path}" and checks[0]["passed"] is (outcome == "success")
    assert finished["customData"]["rule"] == f"probe-{path}"
    if outcome == "failure":
        assert "503" in finished["subject"]["content"]["reason"]


def _push_event():
    from router.model import events
    from tests.conftest import SHARED
    payload = json.loads((SHARED / "fixtures/github/push/payload.json").read_text())
    return events.make({"id": "delivery-probe", "source": payload["repository"]["html_url"], "type": PUSH}, payload)


EXEC_RULE = """
kind: TriggerRule
metadata: {{name: exec-check}}
spec:
  filters: [{{exact: {{type: com.github.push}}}}]
  action:
    exec:
      command: ["{python}", "-c", "{code}", "{{{{ data.ref }}}}"]
      timeout: 1s
"""


@pytest.mark.parametrize("code,outcome,detail", [
    ("import sys; print(sys.argv[1]); sys.exit(0)", "success", "refs/tags/simple-tag"),
    ("import sys; sys.stderr.write('smoke failed'); sys.exit(3)", "failure", "smoke failed"),
    ("import time; time.sleep(30)", "error", "timed out"),
])
async def test_exec_outcomes(edge, tmp_path, code, outcome, detail):
    tasks = await start_routing(edge, tmp_path, EXEC_RULE.format(python=sys.executable, code=code))
    try:
        await post_github(edge, "push/payload.json", f"exec-{outcome}")
        *_, finished = await outcomes_for(edge, 3)
    finally:
        await stop(tasks)
    cdevents_schema.validate(finished)
    assert finished["subject"]["content"]["outcome"] == outcome
    [check] = finished["customData"]["checks"]
    assert detail in check["stdoutTail"] + check["stderrTail"] + finished["subject"]["content"]["reason"]


async def test_undecodable_event_is_dead_lettered_and_routing_goes_on(edge, tmp_path, target):
    tasks = await start_routing(edge, tmp_path, PROBE_RULES.format(name="x", target=target, path="healthy"))
    try:
        await edge.bus.js.publish("tr.events.garbage", b"not a cloudevent", headers={"Nats-Msg-Id": "garbage-1"})
        await post_github(edge, "push/payload.json", "after-garbage")
        *_, finished = await outcomes_for(edge, 3)
        assert finished["subject"]["content"]["outcome"] == "success"
        info = await edge.bus.js.stream_info("TR_DEADLETTER")
        assert info.state.messages == 1
        dead = await edge.bus.js.get_last_msg("TR_DEADLETTER", "tr.deadletter.events")
        assert dead.data == b"not a cloudevent" and "ce- headers" in dead.headers["Trigger-Router-Reason"]
    finally:
        await stop(tasks)
