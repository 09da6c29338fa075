"""``cloudevent`` against a real CloudEvents function server (aiohttp on loopback), and through the
real executor and nats-server for retries and ``publishReply``.

Expected values come from ``docs/remote-functions.md``, not from the code.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest
from aiohttp import web

from handlers.actions import cloudevent, replies
from router import errors
from router.engine import runs
from router.model import events
from router.plugins import actions
from tests.integration.test_routing import outcomes_for, start_routing, stop

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
SECRET = "Bearer s3cr3t-t0ken"
REPLY_TYPE = "dev.example.verified"


def deployed(event_id: str = "d-1") -> events.CloudEvent:
    return events.make({"id": event_id, "source": "/tests/deployer", "type": "dev.example.deployed"},
                       {"service": "web", "version": "1.2.3"})


class Function:
    """A function endpoint: records every request; ``answers`` (a list) are served in order, the
    last one again and again."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.answers: list = [web.Response(status=200)]
        self.url = ""
        self.released = asyncio.Event()
        """Set at teardown: a hanging answer stops hanging, so the server can stop at once."""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append({"headers": dict(request.headers), "body": await request.read(), "at": time.monotonic()})
        answer = self.answers[min(len(self.requests) - 1, len(self.answers) - 1)]
        if answer == "hang":
            await asyncio.wait_for(self.released.wait(), 30)
        return answer() if callable(answer) else answer


@pytest.fixture
async def function():
    fn = Function()
    app = web.Application()
    app.router.add_post("/fn", fn.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fn.url = f"http://127.0.0.1:{runner.addresses[0][1]}/fn"
    yield fn
    fn.released.set()
    await runner.cleanup()


def binary_reply(data: dict | None, **attributes) -> web.Response:
    headers = {"ce-specversion": "1.0", "ce-type": REPLY_TYPE, **{f"ce-{k}": v for k, v in attributes.items()}}
    if data is None:
        return web.Response(status=200, headers=headers)
    return web.Response(status=200, body=json.dumps(data).encode(),
                        headers={**headers, "Content-Type": "application/json"})


def structured_reply(data: dict, **attributes) -> web.Response:
    return web.Response(status=200, body=json.dumps({"specversion": "1.0", "type": REPLY_TYPE, **attributes,
                                                     "data": data}).encode(),
                        headers={"Content-Type": "application/cloudevents+json"})


def context(run_id: str = "f" * 32, timeout: float = 10.0, publish=None) -> actions.Context:
    return actions.Context(run_id, "fn-rule", deployed(), timeout, TRACEPARENT, publish=publish)


async def test_the_event_arrives_in_binary_mode_with_traceparent_and_the_secret_header(function, tmp_path, caplog):
    (tmp_path / "authorization").write_text(SECRET + "\n")
    function.answers = [lambda: web.Response(status=400, text=f"refused; you sent {SECRET}")]
    params = cloudevent.CloudEventFunction.model_validate({
        "url": function.url + "?code=url-key", "headers": {"X-Team": "web"},
        "headersFrom": {"Authorization": str(tmp_path / "authorization")}})
    with caplog.at_level(logging.DEBUG):
        result = await cloudevent.call(params, context())
    (received,) = function.requests
    headers = received["headers"]
    assert (headers["ce-specversion"], headers["ce-id"], headers["ce-source"], headers["ce-type"]) == (
        "1.0", "d-1", "/tests/deployer", "dev.example.deployed")
    assert headers["Content-Type"] == "application/json"
    assert json.loads(received["body"]) == {"service": "web", "version": "1.2.3"}
    assert headers["traceparent"] == TRACEPARENT
    assert headers["Authorization"] == SECRET and headers["X-Team"] == "web"
    # 4xx: failure, the status and an excerpt of the body, the echoed secret cut out; no secret anywhere.
    assert result.outcome == "failure"
    assert result.reason == f"{function.url} answered HTTP 400: refused; you sent [redacted]"
    shown = json.dumps([result.reason, result.checks])
    assert SECRET not in shown and "s3cr3t" not in shown and "url-key" not in shown
    assert "s3cr3t" not in caplog.text


@pytest.mark.parametrize("answer,outcome,reason,checks", [
    (lambda: web.Response(status=200), "success", "took the event (HTTP 200, no reply event)", []),
    (lambda: web.Response(status=202, text="queued"), "success", "took the event (HTTP 202, no reply event)", []),
    (lambda: binary_reply({"outcome": "failure", "reason": "p99 latency 900 ms",
                           "checks": [{"name": "latency", "passed": False, "p99Ms": 900}]}, id="r-1", source="/fn"),
     "failure", "p99 latency 900 ms", [{"name": "latency", "passed": False, "p99Ms": 900}]),
    (lambda: structured_reply({"outcome": "success", "checks": [{"name": "smoke", "passed": True}]}),
     "success", "the function replied success", [{"name": "smoke", "passed": True}]),
    (lambda: binary_reply({"verified": True}, id="r-2", source="/fn"), "success",
     f"the function replied {REPLY_TYPE} (its data names no outcome)", []),
    (lambda: binary_reply(None, id="r-3", source="/fn"), "success",
     f"the function replied {REPLY_TYPE} (its data names no outcome)", []),
    (lambda: web.Response(status=404, text="no such function"), "failure", "answered HTTP 404: no such function", []),
    (lambda: web.Response(status=302, headers={"Location": "/elsewhere"}), "failure", "answered HTTP 302: (no body)",
     []),
])
async def test_reply_outcomes_map_as_documented(function, answer, outcome, reason, checks):
    function.answers = [answer]
    params = cloudevent.CloudEventFunction.model_validate({"url": function.url})
    result = await cloudevent.call(params, context())
    assert (result.outcome, result.reason.endswith(reason)) == (outcome, True), result.reason
    assert result.checks[0]["status"] == answer().status
    assert result.checks[1:] == checks


@pytest.mark.parametrize("answer,message", [
    (lambda: binary_reply({"outcome": "passed"}, id="r", source="/fn"), "data.outcome breaks the reply contract"),
    (lambda: binary_reply({"outcome": "failure", "checks": [{"passed": False}]}, id="r", source="/fn"),
     "data.checks.0.name breaks the reply contract"),
    (lambda: web.Response(status=200, body=b"{", headers={"Content-Type": "application/cloudevents+json"}),
     "the reply is not a valid CloudEvent"),
])
async def test_a_reply_that_breaks_the_contract_is_an_error(function, answer, message):
    function.answers = [answer]
    params = cloudevent.CloudEventFunction.model_validate({"url": function.url})
    with pytest.raises(errors.PermanentError, match=message):
        await cloudevent.call(params, context())


@pytest.mark.parametrize("status", [500, 503, 429, 408])
async def test_not_now_is_temporary_with_the_wait_asked_for(function, status):
    function.answers = [web.Response(status=status, headers={"Retry-After": "7"})]
    params = cloudevent.CloudEventFunction.model_validate({"url": function.url})
    with pytest.raises(errors.TemporaryError) as raised:
        await cloudevent.call(params, context())
    assert raised.value.delay == 7.0 and f"HTTP {status}" in str(raised.value)


async def test_a_hanging_function_times_out_and_a_refused_connection_is_temporary(function):
    function.answers = ["hang"]
    params = cloudevent.CloudEventFunction.model_validate({"url": function.url, "timeout": "300ms"})
    started = time.monotonic()
    with pytest.raises(errors.TemporaryError, match="no answer within 0.3s"):
        await cloudevent.call(params, context())
    assert time.monotonic() - started < 2
    closed = cloudevent.CloudEventFunction.model_validate({"url": "http://127.0.0.1:9/fn"})
    with pytest.raises(errors.TemporaryError, match="ClientConnectorError"):
        await cloudevent.call(closed, context())


async def test_an_unreadable_secret_file_is_an_error_naming_the_header_not_its_value(function, tmp_path):
    params = cloudevent.CloudEventFunction.model_validate({
        "url": function.url, "headersFrom": {"Authorization": str(tmp_path / "missing")}})
    with pytest.raises(errors.PermanentError, match="headersFrom.Authorization: cannot read .*missing"):
        await cloudevent.call(params, context())
    assert function.requests == []


RETRY_RULE = """
kind: TriggerRule
metadata: {{name: fn-retry}}
spec:
  filters: [{{exact: {{type: dev.example.deployed}}}}]
  policy: {{timeout: 20s, retry: {{limit: 2, backoff: 50ms}}}}
  action:
    cloudevent: {{url: "{url}", timeout: 5s}}
"""


async def test_a_500_then_200_is_retried_once_after_its_retry_after(edge, tmp_path, function):
    function.answers = [web.Response(status=500, text="cold start", headers={"Retry-After": "1"}),
                        binary_reply({"outcome": "success", "reason": "all good"}, id="r-ok", source="/fn")]
    tasks = await start_routing(edge, tmp_path, RETRY_RULE.format(url=function.url))
    try:
        await edge.bus.publish(deployed("d-retry"))
        _, _, finished = await outcomes_for(edge, 3)
    finally:
        await stop(tasks)
    content, custom = finished["subject"]["content"], finished["customData"]
    assert (content["outcome"], content["reason"], custom["attempts"]) == ("success", "all good", 2)
    assert len(function.requests) == 2
    assert function.requests[1]["at"] - function.requests[0]["at"] >= 0.95  # Retry-After: 1, not backoff: 50ms
    assert function.requests[0]["headers"]["ce-id"] == function.requests[1]["headers"]["ce-id"] == "d-retry"
    traces = {r["headers"]["traceparent"].split("-")[1] for r in function.requests}
    assert len(traces) == 1  # both attempts continue the run's one trace


async def test_publish_reply_publishes_once_across_a_run_carried_out_again(edge, function):
    function.answers = [lambda: structured_reply({"outcome": "success"})]  # no id, no source: derived from the run
    params = cloudevent.CloudEventFunction.model_validate({"url": function.url, "publishReply": True})
    run_id = runs.run_id("fn-rule", deployed())
    first = await cloudevent.call(params, context(run_id, publish=edge.bus.publish))
    again = await cloudevent.call(params, context(run_id, publish=edge.bus.publish))  # the redelivered run
    assert first.checks[0]["reply"] == again.checks[0]["reply"] == {
        "id": replies.derived_id(run_id), "source": "/trigger-router/rules/fn-rule/function", "type": REPLY_TYPE,
        "publish": "published"}
    published = [e for e in await edge.stored() if e.type == REPLY_TYPE]
    assert len(function.requests) == 2 and len(published) == 1
    assert published[0].attributes["traceparent"] == TRACEPARENT  # the chain continues the run's trace
    assert published[0].json() == {"outcome": "success"}


async def test_a_reply_of_the_triggers_own_type_is_not_published(edge, function):
    function.answers = [lambda: web.Response(status=200, body=json.dumps({
        "specversion": "1.0", "type": "dev.example.deployed", "id": "echo", "source": "/fn"}).encode(),
        headers={"Content-Type": "application/cloudevents+json"})]
    params = cloudevent.CloudEventFunction.model_validate({"url": function.url, "publishReply": True})
    result = await cloudevent.call(params, context(publish=edge.bus.publish))
    assert result.checks[0]["reply"]["publish"].startswith("not published: it has the triggering event's type")
    assert [e for e in await edge.stored() if e.source == "/fn"] == []


CHAIN_RULES = """
kind: TriggerRule
metadata: {{name: fn-first}}
spec:
  filters: [{{exact: {{type: dev.example.deployed}}}}]
  action:
    cloudevent: {{url: "{url}", publishReply: true}}
---
kind: TriggerRule
metadata: {{name: fn-second}}
spec:
  filters: [{{exact: {{type: %s}}}}]
  action:
    cloudevent: {{url: "{url}"}}
""" % REPLY_TYPE


async def test_functions_chain_through_the_executor(edge, tmp_path, function):
    function.answers = [lambda: structured_reply({"outcome": "success", "reason": "first done"}),
                        lambda: web.Response(status=204)]
    tasks = await start_routing(edge, tmp_path, CHAIN_RULES.format(url=function.url))
    try:
        await edge.bus.publish(deployed("d-chain"))
        found = await outcomes_for(edge, 6)
    finally:
        await stop(tasks)
    finished = {f["customData"]["rule"]: f for f in found if f["context"]["type"].split(".")[3] == "finished"}
    assert {rule: f["subject"]["content"]["outcome"] for rule, f in finished.items()} == {
        "fn-first": "success", "fn-second": "success"}
    first_run = runs.run_id("fn-first", deployed("d-chain"))
    assert finished["fn-first"]["customData"]["checks"][0]["reply"]["publish"] == "published"
    assert [r["headers"]["ce-type"] for r in function.requests] == ["dev.example.deployed", REPLY_TYPE]
    assert function.requests[1]["headers"]["ce-id"] == replies.derived_id(first_run)
    assert len([e for e in await edge.stored() if e.type == REPLY_TYPE]) == 1


async def test_a_long_reply_event_is_an_error_and_a_long_plain_body_is_not(function):
    long = b"x" * (cloudevent.REPLY_LIMIT + 10)
    params = cloudevent.CloudEventFunction.model_validate({"url": function.url})
    function.answers = [lambda: web.Response(status=200, body=long, headers={"ce-specversion": "1.0",
                                                                             "ce-type": REPLY_TYPE})]
    with pytest.raises(errors.PermanentError, match="the reply event is longer than 1048576 bytes"):
        await cloudevent.call(params, context())
    function.answers = [lambda: web.Response(status=200, body=long, content_type="text/plain")]
    assert (await cloudevent.call(params, context())).outcome == "success"


async def test_a_reply_of_many_chunks_is_read_whole(function):
    reason = "r" * 300_000  # several of the server's writes, several of the client's chunks
    function.answers = [lambda: binary_reply({"outcome": "failure", "reason": reason}, id="big", source="/fn")]
    params = cloudevent.CloudEventFunction.model_validate({"url": function.url})
    result = await cloudevent.call(params, context())
    assert (result.outcome, result.reason) == ("failure", reason)
