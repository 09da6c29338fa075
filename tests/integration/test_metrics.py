"""``/metrics`` as an operator uses it: a real Prometheus scrapes a real ``serve`` during real runs.

Prometheus is Debian's ``prometheus`` (``make test`` installs it; the ``prometheus`` fixture,
``tests/support/prometheus.py``), started on a free port with a 1 s scrape interval; the answers come from its HTTP query API, so what is asserted is what a
dashboard or an alert would see. Counts are known from what the test sent: 6 webhook-like events of
which 4 pass and 2 fail their probe, 1 refused request, 1 duplicate.
"""

from __future__ import annotations

import json
import subprocess

from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.support import httpserver, routers
from tests.support import prometheus as prometheus_server
from tests.support.prometheus import query
from tests.support.registryserver import free_port

PASSING, FAILING = 4, 2
ALERTS = Path(__file__).resolve().parents[2] / "deploy/helm/trigger-router/files/alerts.yaml"
EVENT_TYPE = "com.example.deployed"


@pytest.fixture
async def service():
    async def answer(request):
        ok = request.match_info["state"] == "good"
        return web.json_response({"ok": ok}, status=200 if ok else 503)

    app = web.Application()
    app.router.add_get("/{state}", answer)
    async with httpserver.serving(app) as url:
        yield f"{url}"


async def alerts(base: str, name: str) -> list[dict]:
    async with aiohttp.ClientSession() as http, http.get(f"{base}/api/v1/alerts") as answer:
        found = (await answer.json())["data"]["alerts"]
    return [a for a in found if a["labels"]["alertname"] == name and a["state"] == "firing"]


async def rule_health(base: str) -> dict[str, str]:
    async with aiohttp.ClientSession() as http, http.get(f"{base}/api/v1/rules") as answer:
        groups = (await answer.json())["data"]["groups"]
    return {rule["name"]: rule["health"] for group in groups for rule in group["rules"]}


def value(result: list[dict]) -> float | None:
    return sum(float(r["value"][1]) for r in result) if result else None


async def test_prometheus_sees_events_runs_and_durations(nats_server, prometheus, service, tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(json.dumps({"kind": "TriggerRule", "metadata": {"name": "probed"}, "spec": {
        "filters": [{"exact": {"type": EVENT_TYPE}}],
        "action": {"httpProbe": {"checks": [{"url": f"{service}/{{{{ data.state }}}}"}],
                                 "deadline": "1s", "interval": "250ms"}}}}))
    port = free_port()
    process = routers.start_router(nats_server.url, str(rules), port, tmp_path, "router",
                                   METRICS__POLL_INTERVAL="1s")
    base = f"http://127.0.0.1:{port}"
    try:
        async def up():
            try:
                async with aiohttp.ClientSession() as http, http.get(f"{base}/readyz") as answer:
                    return answer.status == 200
            except aiohttp.ClientError:
                return False
        await routers.until(up, 30, "serve ready", tmp_path / "router.log")
        promql = prometheus(f"127.0.0.1:{port}", rule_files=[ALERTS])
        async with aiohttp.ClientSession() as http:
            headers = {"Content-Type": "application/cloudevents+json"}
            for i in range(PASSING + FAILING):
                event = {"specversion": "1.0", "id": f"m-{i}", "source": "/ci", "type": EVENT_TYPE,
                         "data": {"state": "good" if i < PASSING else "bad"}}
                async with http.post(f"{base}/events", data=json.dumps(event), headers=headers) as answer:
                    assert answer.status == 202, await answer.text()
            async with http.post(f"{base}/events", data=json.dumps(event), headers=headers) as answer:
                assert answer.status == 202  # the last one again: a duplicate
            async with http.post(f"{base}/events", data=b"{not json", headers=headers) as answer:
                assert answer.status == 400

        async def counted(expression: str, expected: float):
            async def look():
                return value(await query(promql, expression)) == expected
            await routers.until(look, 60, f"{expression} == {expected}", tmp_path / "router.log",
                                tmp_path / "prometheus.log")

        await counted(f'trigger_router_events_published_total{{type="{EVENT_TYPE}"}}', PASSING + FAILING)
        await counted(f'trigger_router_events_duplicate_total{{type="{EVENT_TYPE}"}}', 1)
        await counted('trigger_router_ingest_requests_total{source="events",code="202"}', PASSING + FAILING + 1)
        await counted('trigger_router_ingest_rejected_total{source="events"}', 1)
        await counted('trigger_router_rule_matches_total{rule="probed"}', PASSING + FAILING)
        await counted('trigger_router_runs_total{rule="probed",action="httpProbe",outcome="success"}', PASSING)
        await counted('trigger_router_runs_total{rule="probed",action="httpProbe",outcome="failure"}', FAILING)
        await counted('trigger_router_run_duration_seconds_count{rule="probed"}', PASSING + FAILING)
        await counted('trigger_router_bus_connected', 1)
        await counted('trigger_router_ready', 1)
        await counted('trigger_router_consumer_pending_messages{consumer="trigger-router-runs"}', 0)
        # The failing runs waited out their 1 s deadline: the histogram has them above 0.5 s.
        slow = value(await query(promql, 'trigger_router_run_duration_seconds_count{rule="probed"} - '
                                         'ignoring(le) trigger_router_run_duration_seconds_bucket{le="0.5"}'))
        assert slow is not None and slow >= FAILING
        labels = {k for r in await query(promql, '{__name__=~"trigger_router_.*"}') for k in r["metric"]}
        assert not labels & {"run_id", "id", "event_id", "delivery"}  # no ids as labels

        # The shipped alerts load and evaluate; a rejected reload makes its alert fire.
        assert await alerts(promql, "TriggerRouterRuleReloadFailing") == []
        rules.write_text("kind: TriggerRule\nmetadata: {name: probed}\nspec: {action: {nosuch: {}}}\n")
        firing = await routers.until(lambda: alerts(promql, "TriggerRouterRuleReloadFailing"), 60,
                                     "the reload alert fired", tmp_path / "router.log", tmp_path / "prometheus.log")
        assert firing[0]["labels"]["severity"] == "warning"
        health = await rule_health(promql)
        assert health and all(h == "ok" for h in health.values()), health
    finally:
        routers.stop_router(process)


def test_the_shipped_alerts_pass_promtool():
    promtool = Path(prometheus_server.binary()).with_name("promtool")
    result = subprocess.run([str(promtool), "check", "rules", str(ALERTS)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 6 rules found" in result.stdout
