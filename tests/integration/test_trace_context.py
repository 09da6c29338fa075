"""One trace from a webhook to its verdict: the event, the outcomes, the probe's request, the logs.

A real ``serve`` with ``log.format: json`` receives a signed GitHub ``workflow_run`` carrying a
``traceparent`` header; its rule probes a local service that records the headers it receives. The
trace id must be on the stored event, on every outcome event (each with a span of its own), in the
probe's request at the service, and in the JSON log lines of that run. The Job annotation is
tested against the control plane in ``k8s/test_kubernetes_job.py``.
"""

from __future__ import annotations

import json
import uuid

import aiohttp
import nats
import pytest
from aiohttp import web

from router.model import tracecontext
from router.model.bindings import nats as nats_binding
from tests.integration.conftest import GITHUB_SECRET, github_signature
from tests.integration.test_webhooks import GITHUB
from tests.support import httpserver, routers
from tests.support.registryserver import free_port

TRACE = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE}-b7ad6b7169203331-01"
FIXTURE = "workflow_run/completed.payload.json"


@pytest.fixture
async def service():
    """The deployed service: answers 200 and records every request's headers."""
    seen: list[dict] = []

    async def health(request):
        seen.append(dict(request.headers))
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/health", health)
    async with httpserver.serving(app) as url:
        yield f"{url}", seen


async def stored(nats_url: str, stream: str, count: int) -> list:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        found = []
        for sequence in range(1, (await js.stream_info(stream)).state.last_seq + 1):
            raw = await js.get_msg(stream, sequence)
            found.append(nats_binding.from_message(raw.headers, raw.data))
        return found if len(found) >= count else []
    finally:
        await nc.close()


async def test_a_webhooks_trace_reaches_the_outcomes_the_probe_and_the_logs(nats_server, service, tmp_path):
    url, seen = service
    rules = tmp_path / "rules.yaml"
    rules.write_text(json.dumps({"kind": "TriggerRule", "metadata": {"name": "traced"}, "spec": {
        "filters": [{"prefix": {"type": "com.github.workflow_run"}}],
        "action": {"httpProbe": {"checks": [{"url": f"{url}/health"}]}}}}))
    port = free_port()
    process = routers.start_router(nats_server.url, str(rules), port, tmp_path, "router", LOG__FORMAT="json",
                                   GITHUB__SECRETS=json.dumps([GITHUB_SECRET]))
    try:
        body = (GITHUB / FIXTURE).read_bytes()
        headers = {"Content-Type": "application/json", "X-GitHub-Event": "workflow_run",
                   "X-GitHub-Delivery": str(uuid.uuid4()), "X-Hub-Signature-256": github_signature(body),
                   "traceparent": TRACEPARENT, "tracestate": "ci=github"}

        async def post():
            try:
                async with aiohttp.ClientSession() as http:
                    async with http.post(f"http://127.0.0.1:{port}/webhooks/github", data=body,
                                         headers=headers) as answer:
                        return answer.status == 202
            except aiohttp.ClientError:
                return False
        await routers.until(post, 30, "the webhook was accepted", tmp_path / "router.log")
        outcomes = await routers.until(lambda: stored(nats_server.url, "TR_OUTCOMES", 3), 60, "three outcomes",
                                       tmp_path / "router.log")
        events = await stored(nats_server.url, "TR_EVENTS", 1)
    finally:
        routers.stop_router(process)

    webhook = [e for e in events if e.type.startswith("com.github.workflow_run")]
    assert [e.attributes["traceparent"] for e in webhook] == [TRACEPARENT]
    assert webhook[0].attributes["tracestate"] == "ci=github"
    derived = [e for e in events if e.type.startswith("dev.cdevents.")]  # the pipelinerun CDEvent of the webhook
    assert derived and all(tracecontext.trace_id(e.attributes["traceparent"]) == TRACE for e in derived)
    spans = {tracecontext.parse(o.attributes["traceparent"])[1] for o in outcomes}
    assert [tracecontext.trace_id(o.attributes["traceparent"]) for o in outcomes] == [TRACE] * 3
    assert len(spans) == 3 and "b7ad6b7169203331" not in spans  # a span of their own each
    (probe,) = seen
    assert tracecontext.trace_id(probe["traceparent"]) == TRACE
    assert tracecontext.parse(probe["traceparent"])[1] not in spans | {"b7ad6b7169203331"}

    lines = [json.loads(line) for line in (tmp_path / "router.log").read_text().splitlines() if line.startswith("{")]
    run_id = outcomes[0].subject
    of_run = [line for line in lines if line.get("run_id") == run_id]
    assert of_run and all(line["trace_id"] == TRACE and line["rule"] == "traced" for line in of_run)
    (finished,) = [line for line in of_run if line.get("outcome")]
    assert finished["outcome"] == "success" and finished["duration_s"] >= 0
    assert finished["event_type"] == "com.github.workflow_run.completed"
    accepted = [line for line in lines if line.get("delivery") == headers["X-GitHub-Delivery"]]
    assert accepted and all(line["trace_id"] == TRACE and line["source"] == "github" for line in accepted)


@pytest.fixture
async def collector():
    """An OTLP/HTTP receiver: decodes every ExportTraceServiceRequest and keeps its spans."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    spans: list = []

    async def traces(request):
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.read())
        for resource in message.resource_spans:
            service = {a.key: a.value.string_value for a in resource.resource.attributes}.get("service.name")
            for scope in resource.scope_spans:
                spans.extend((service, span) for span in scope.spans)
        return web.Response(body=b"", content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    async with httpserver.serving(app) as url:
        yield f"{url}/v1/traces", spans


async def test_with_an_otlp_endpoint_each_run_is_a_span_under_the_triggers(nats_server, service, collector, tmp_path):
    url, seen = service
    endpoint, spans = collector
    rules = tmp_path / "rules.yaml"
    rules.write_text(json.dumps({"kind": "TriggerRule", "metadata": {"name": "traced"}, "spec": {
        "filters": [{"exact": {"type": "com.example.deployed"}}],
        "action": {"httpProbe": {"checks": [{"url": f"{url}/health"}]}}}}))
    process = routers.start_router(nats_server.url, str(rules), 0, tmp_path, "router",
                                   TRACING__OTLP_ENDPOINT=endpoint, TRACING__EXPORT_INTERVAL="200ms",
                                   TRACING__SERVICE_NAME="router-under-test")
    try:
        await publish_traced(nats_server.url)
        await routers.until(lambda: _have(spans), 60, "a span exported", tmp_path / "router.log")
    finally:
        routers.stop_router(process)
    ((service_name, span),) = spans
    assert service_name == "router-under-test" and span.name == "run traced"
    assert span.trace_id.hex() == TRACE and span.parent_span_id.hex() == "b7ad6b7169203331"
    attributes = {a.key: a.value for a in span.attributes}
    assert attributes["trigger_router.rule"].string_value == "traced"
    assert attributes["trigger_router.outcome"].string_value == "success"
    assert attributes["cloudevents.event_id"].string_value == "traced-0"
    assert span.end_time_unix_nano > span.start_time_unix_nano
    (probe,) = seen  # the probe's request is a child of the run span: one connected trace
    assert tracecontext.parse(probe["traceparent"])[:2] == (TRACE, span.span_id.hex())


async def _have(spans: list) -> bool:
    return bool(spans)


async def publish_traced(nats_url: str) -> None:
    await routers.publish_events(nats_url, 1, "traced", event_type="com.example.deployed",
                                 attributes={"traceparent": TRACEPARENT})
