"""``metricGate`` against a real Prometheus scraping an exporter the test controls.

The exporter is a small aiohttp app standing in for a service's pods: a request counter and an
error counter per ``pod_template_hash``, advanced 10 requests per 100 ms with the error share the
test sets. Prometheus (Debian's, 1 s scrape interval) scrapes it; the gate asks Prometheus "error
ratio of the new pods < 1 %" through the HTTP query API, as it would in production. Expected
values are the README's: healthy traffic passes with every measurement in the checks, an error
spike mid-window fails the gate before the window ends, a query without data is inconclusive and
ends ``error``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict

import aiohttp
import pytest
from aiohttp import web

from handlers.actions import metric_gate
from router.model import events
from router.plugins import actions
from tests.integration.test_routing import outcomes_for, start_routing, stop
from tests.support import httpserver, routers
from tests.support.prometheus import query
from tests.support.registryserver import free_port

NEW = "7d9f8c6b5"
RATIO = ('sum(rate(app_errors_total{{pod_template_hash="{hash}"}}[5s]))'
         ' / sum(rate(app_requests_total{{pod_template_hash="{hash}"}}[5s]))')


class Exporter:
    """Counters per pod-template-hash; ``error_share[hash]`` is what fraction of requests fail."""

    def __init__(self) -> None:
        self.requests: dict[str, float] = defaultdict(float)
        self.errors: dict[str, float] = defaultdict(float)
        self.error_share: dict[str, float] = {NEW: 0.0}

    def tick(self) -> None:
        for template_hash, share in self.error_share.items():
            self.requests[template_hash] += 10
            self.errors[template_hash] += round(10 * share)

    async def metrics(self, request: web.Request) -> web.Response:
        lines = ["# TYPE app_requests_total counter", "# TYPE app_errors_total counter"]
        for name, values in (("app_requests_total", self.requests), ("app_errors_total", self.errors)):
            lines += [f'{name}{{pod_template_hash="{h}"}} {v}' for h, v in sorted(values.items())]
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")


@pytest.fixture
async def exporter():
    served = Exporter()

    async def traffic():
        while True:
            served.tick()
            await asyncio.sleep(0.1)

    app = web.Application()
    app.router.add_get("/metrics", served.metrics)
    task = asyncio.create_task(traffic())
    try:
        async with httpserver.serving(app) as url:
            yield served, url.removeprefix("http://")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
async def scraped(exporter, prometheus, tmp_path):
    """(exporter, Prometheus base URL) once Prometheus has a ratio for the new pods."""
    served, target = exporter
    base = prometheus(target, job="app")

    async def ratio_known():
        return await query(base, RATIO.format(hash=NEW))
    await routers.until(ratio_known, 60, "Prometheus has the error ratio", tmp_path / "prometheus.log")
    return served, base


def context(timeout: float = 120.0) -> actions.Context:
    return actions.Context("g" * 32, "gate", events.make(
        {"id": "e", "source": "/tests", "type": "io.k8s.deployment.rollout_completed"}, {}), timeout)


async def gate(base: str, template_hash: str = NEW, **params) -> actions.Result:
    model = metric_gate.MetricGate.model_validate({
        "url": base, "interval": "1s", **params,
        "queries": [{"name": "error ratio", "query": RATIO.format(hash=template_hash), "condition": "< 0.01"}]})
    return await metric_gate.metric_gate(model, context())


async def test_healthy_traffic_passes_with_every_measurement_in_the_checks(scraped):
    _, base = scraped
    result = await gate(base, window="4s")
    assert result.outcome == "success", result.reason
    assert result.reason == "1 query held over 4s (5 measurements each)"
    assert [c["name"] for c in result.checks] == [f"error ratio #{n}" for n in range(1, 6)]
    assert all(c["phase"] == "successful" and c["passed"] and c["values"][0]["value"] == 0 for c in result.checks)
    assert result.checks[0]["query"] == RATIO.format(hash=NEW) and result.checks[0]["condition"] == "< 0.01"


@contextlib.asynccontextmanager
async def counting_proxy(base: str):
    """(URL, answered queries): Prometheus's query API behind a proxy that counts what the gate asked."""
    answered: list[str] = []

    async def forward(request: web.Request) -> web.Response:
        async with aiohttp.ClientSession() as http:
            async with http.request(request.method, base + request.path_qs, data=await request.read(),
                                    headers={"Content-Type": request.content_type}) as upstream:
                body = await upstream.read()
        answered.append(request.path)
        return web.Response(body=body, status=upstream.status, content_type=upstream.content_type)

    app = web.Application()
    app.router.add_route("*", "/{path:.*}", forward)
    async with httpserver.serving(app) as url:
        yield url, answered


async def test_an_error_spike_fails_the_gate_before_the_window_ends(scraped):
    served, base = scraped
    async with counting_proxy(base) as (proxy, answered):
        started = time.monotonic()
        running = asyncio.create_task(gate(proxy, window="60s", failureLimit=1))

        async def measured_three_times() -> bool:
            return len(answered) >= 3
        await routers.until(measured_three_times, 30, "the gate measured clean traffic 3 times")
        served.error_share[NEW] = 0.5  # the new pods start failing half their requests
        result = await asyncio.wait_for(running, 30)
    elapsed = time.monotonic() - started
    assert result.outcome == "failure", result.reason
    assert elapsed < 20, elapsed  # the 60 s window did not have to pass
    phases = [c["phase"] for c in result.checks]
    assert phases[:3] == ["successful"] * 3 and phases[-2:] == ["failed", "failed"]
    assert "successful" not in phases[phases.index("failed"):]
    assert result.reason.startswith("error ratio: ") and "is not < 0.01" in result.reason
    assert "(measurement" in result.reason and "2 failed, failureLimit 1); aborted" in result.reason
    assert result.severity == "high"


async def test_no_data_is_inconclusive_and_ends_error(scraped):
    _, base = scraped
    result = await gate(base, template_hash="nosuchhash", window="10s", inconclusiveLimit=2)
    assert result.outcome == "error"
    assert result.reason == ("inconclusive: error ratio: no data: the query returned no series "
                             "(measurement 3, inconclusiveLimit 2)")
    assert [(c["name"], c["phase"], c["passed"], c["values"]) for c in result.checks] == [
        (f"error ratio #{n}", "inconclusive", False, []) for n in (1, 2, 3)]


async def test_an_unreachable_server_is_inconclusive_not_a_pass():
    result = await gate(f"http://127.0.0.1:{free_port()}", window="10s")
    assert result.outcome == "error" and result.reason.startswith("inconclusive: error ratio: ")
    assert "ClientConnectorError" in result.checks[0]["error"]


async def test_a_query_the_server_refuses_ends_error_at_once(scraped):
    _, base = scraped
    model = metric_gate.MetricGate.model_validate({"url": base, "window": "30s", "queries": [
        {"query": "sum(rate(app_errors_total[5s]", "condition": "< 1"}]})
    with pytest.raises(metric_gate.errors.PermanentError, match="bad_data"):
        await metric_gate.metric_gate(model, context())


RULE = """
kind: TriggerRule
metadata: {{name: gate}}
spec:
  filters: [{{exact: {{type: io.k8s.deployment.rollout_completed}}}}]
  policy: {{timeout: 60s}}
  action:
    metricGate:
      url: {base}
      interval: 1s
      window: 2s
      queries:
        - name: error ratio of the new pods
          query: >-
            sum(rate(app_errors_total{{pod_template_hash="{{{{ data.podTemplateHash }}}}"}}[5s]))
            / sum(rate(app_requests_total{{pod_template_hash="{{{{ data.podTemplateHash }}}}"}}[5s]))
          condition: "< 0.01"
"""


async def test_a_rule_renders_the_query_from_the_event_and_publishes_every_measurement(scraped, edge, tmp_path):
    _, base = scraped
    tasks = await start_routing(edge, tmp_path, RULE.format(base=base))
    try:
        await edge.bus.publish(events.make(
            {"id": "rolled", "source": "/k8s/default/deployments/web", "type": "io.k8s.deployment.rollout_completed"},
            {"namespace": "default", "name": "web", "podTemplateHash": NEW}))
        *_, finished = await outcomes_for(edge, 3, timeout=60)
    finally:
        await stop(tasks)
    assert finished["subject"]["content"]["outcome"] == "success", finished["subject"]["content"]
    checks = finished["customData"]["checks"]
    assert [c["name"] for c in checks] == [f"error ratio of the new pods #{n}" for n in (1, 2, 3)]
    assert all(f'pod_template_hash="{NEW}"' in c["query"] and c["passed"] for c in checks)


async def test_a_range_query_fails_on_a_spike_inside_its_range(scraped):
    """The latest value is clean again, but the range still holds the spike: the gate fails."""
    served, base = scraped
    served.error_share[NEW] = 0.5
    await routers.until(lambda: _ratio_is(base, lambda r: r >= 0.01), 30, "Prometheus sees the spike")
    served.error_share[NEW] = 0.0
    # Until the 5 s rate window no longer sees errors at "now" (the range still holds them).
    await routers.until(lambda: _ratio_is(base, lambda r: r < 0.01), 30, "Prometheus sees clean traffic again")
    instant = await gate(base, window="0s")
    assert instant.outcome == "success", instant.reason
    model = metric_gate.MetricGate.model_validate({"url": base, "interval": "1s", "window": "0s", "queries": [
        {"name": "error ratio", "query": RATIO.format(hash=NEW), "condition": "< 0.01", "range": "20s"}]})
    ranged = await metric_gate.metric_gate(model, context())
    assert ranged.outcome == "failure", ranged.reason
    assert ranged.checks[0]["range"] == 20 and ranged.checks[0]["values"][0]["points"] > 1


async def _ratio_is(base: str, holds) -> bool:
    """Whether the new pods' error ratio, as Prometheus answers it now, satisfies ``holds``."""
    result = await query(base, RATIO.format(hash=NEW))
    return bool(result) and holds(float(result[0]["value"][1]))


@pytest.fixture
async def guarded_api(tmp_path):
    """A Prometheus-compatible API that wants a bearer token (what a Thanos or Mimir gateway does)."""
    async def answer(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Bearer s3cret-token":
            return web.json_response({"status": "error", "errorType": "unauthorized", "error": "no"}, status=401)
        return web.json_response({"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {}, "value": [time.time(), "0.001"]}]}})

    app = web.Application()
    app.router.add_post("/api/v1/query", answer)
    async with httpserver.serving(app) as url:
        yield url


async def test_the_bearer_token_is_read_from_its_file(guarded_api, tmp_path):
    token = tmp_path / "token"
    token.write_text("s3cret-token\n")
    result = await gate(guarded_api, window="0s", bearerTokenFile=str(token))
    assert result.outcome == "success", result.reason
    token.write_text("wrong")
    with pytest.raises(metric_gate.errors.PermanentError, match="HTTP 401: unauthorized"):
        await gate(guarded_api, window="0s", bearerTokenFile=str(token))


async def test_a_window_longer_than_the_timeout_is_refused_before_measuring():
    model = metric_gate.MetricGate.model_validate({"url": "http://127.0.0.1:9", "window": "5m", "queries": [
        {"query": "up", "condition": "== 1"}]})
    with pytest.raises(metric_gate.errors.PermanentError, match=r"initialDelay \+ window \(300s\) does not fit"):
        await metric_gate.metric_gate(model, context(timeout=60))
