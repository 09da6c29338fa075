"""The recipe end to end: rollout -> ``metricGate`` fails -> ``rollback`` -> outcomes on one chain.

Everything is real except the pods' traffic: the local control plane runs the Deployment (kwok
pods), the watch records bundle snapshots, Debian's Prometheus scrapes an exporter whose counters
follow the ReplicaSets the cluster really has (revision 1's pods answer cleanly, revision 2's fail
half their requests), and the rules are the recipe's (``examples/recipes/gate-and-rollback.yaml``)
with ``router.route_outcomes`` on, so the gate's ``failure`` outcome is an event the rollback rule
matches. The rollback's outcomes share the gate outcome's ``chainId`` and name it as their trigger.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

from aiohttp import web

from handlers.kubernetes import client as kube
from router.model import event_types
from tests.integration.conftest import make_settings, serve_edge
from tests.integration.k8s import watching
from tests.integration.k8s.conftest import apply_deployment, deployment
from tests.integration.test_routing import start_routing, stop
from tests.support import httpserver, routers
from tests.support.prometheus import query

OLD, NEW = "sha256:" + "aa" * 32, "sha256:" + "bb" * 32
RECIPE = Path(__file__).resolve().parents[3] / "examples/recipes/gate-and-rollback.yaml"


class ReplicaSetTraffic:
    """Counters per pod-template-hash of the namespace's ReplicaSets; revision 2 fails half its requests."""

    def __init__(self) -> None:
        self.shares: dict[str, float] = {}
        self.requests: dict[str, float] = {}
        self.errors: dict[str, float] = {}

    async def follow(self, client, namespace: str) -> None:
        while True:
            found = await client.request("GET", f"/apis/apps/v1/namespaces/{namespace}/replicasets")
            for rs in found["items"]:
                template_hash = rs["metadata"]["labels"].get("pod-template-hash")
                image = rs["spec"]["template"]["spec"]["containers"][0]["image"]
                self.shares[template_hash] = 0.5 if image.endswith(NEW) else 0.0
            for template_hash, share in self.shares.items():
                self.requests[template_hash] = self.requests.get(template_hash, 0.0) + 10
                self.errors[template_hash] = self.errors.get(template_hash, 0.0) + round(10 * share)
            await asyncio.sleep(0.2)

    async def metrics(self, request: web.Request) -> web.Response:
        lines = []
        for name, values in (("app_requests_total", self.requests), ("app_errors_total", self.errors)):
            lines += [f"# TYPE {name} counter"] + [f'{name}{{pod_template_hash="{h}"}} {v}'
                                                   for h, v in sorted(values.items())]
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")


def recipe(prometheus_url: str, namespace: str) -> str:
    """The shipped example with this test's Prometheus, namespace and short timings."""
    text = RECIPE.read_text()
    for old, new in (("http://prometheus.monitoring:9090", prometheus_url), ("namespace: web", f"namespace: {namespace}"),
                     ("initialDelay: 1m", "initialDelay: 4s"), ("interval: 30s", "interval: 1s"),
                     ("window: 5m", "window: 3s"), ("[1m]", "[5s]"), ("timeout: 8m", "timeout: 60s"), ("timeout: 3m", "timeout: 40s")):
        assert old in text, old
        text = text.replace(old, new)
    return text


async def finished_of(edge, rule: str, timeout: float = 90) -> list[dict]:
    async def look():
        found = [json.loads(e.data) for e in await edge.stored("TR_OUTCOMES") if e.type == event_types.TESTSUITERUN_FINISHED]
        return [f for f in found if f["subject"]["content"]["testSuite"]["id"] == rule]
    return await routers.until(look, timeout, f"a finished outcome of {rule}")


async def test_a_failing_gate_rolls_the_bundle_back_on_one_chain(
        nats_server, tmp_path, kube_cluster, kube_client, namespace, store_namespace, prometheus):
    settings = make_settings(
        nats_server.url, ROUTER__ROUTE_OUTCOMES="true",
        KUBERNETES__KUBECONFIG=str(kube_cluster.kubeconfig), KUBERNETES__CLUSTER="kubeplane",
        KUBERNETES__WATCHES=json.dumps([{"group": "apps", "kind": "Deployment", "namespaces": [namespace]}]),
        KUBERNETES__SNAPSHOTS__ENABLED="true", KUBERNETES__SNAPSHOTS__NAMESPACE=store_namespace)
    kube.configure(settings.kubernetes)
    traffic = ReplicaSetTraffic()
    app = web.Application()
    app.router.add_get("/metrics", traffic.metrics)
    follower = asyncio.create_task(traffic.follow(kube_client, namespace))
    core = f"/api/v1/namespaces/{namespace}"
    await kube_client.request("POST", f"{core}/configmaps", body={"metadata": {"name": "web-config"},
                                                                  "data": {"MODE": "one"}})
    async with httpserver.serving(app) as exporter, serve_edge(nats_server.url, settings) as edge:
        base = prometheus(exporter.removeprefix("http://"), job="web")
        await routers.until(lambda: query(base, "up"), 60, "Prometheus scrapes", tmp_path / "prometheus.log")
        running = await watching.watch(settings, edge.bus, kube_client)
        tasks = await start_routing(edge, tmp_path, recipe(base, namespace))
        try:
            manifest = deployment("web", f"registry.invalid/web@{OLD}", replicas=1)
            manifest["spec"]["template"]["spec"]["containers"][0]["envFrom"] = [{"configMapRef": {"name": "web-config"}}]
            await apply_deployment(kube_client, namespace, manifest)
            [first] = await finished_of(edge, "web-error-budget")
            assert first["subject"]["content"]["outcome"] == "success", first["subject"]["content"]

            found = await kube_client.request("GET", f"{core}/configmaps/web-config")
            await kube_client.request("PUT", f"{core}/configmaps/web-config", body={**found, "data": {"MODE": "two"}})
            path = f"/apis/apps/v1/namespaces/{namespace}/deployments/web"
            found = await kube_client.request("GET", path)
            found["spec"]["template"]["spec"]["containers"][0]["image"] = f"registry.invalid/web@{NEW}"
            await kube_client.request("PUT", path, body=found)

            [undone] = await finished_of(edge, "web-rollback")
            gates = await finished_of(edge, "web-error-budget")
        finally:
            await stop(tasks)
            await running.stop()
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
    [failed] = [g for g in gates if g["subject"]["content"]["outcome"] == "failure"]
    reason = failed["subject"]["content"]["reason"]
    assert reason.startswith("error ratio of the new pods: ") and "is not < 0.01" in reason, reason
    assert undone["subject"]["content"]["outcome"] == "success", undone["subject"]["content"]
    assert undone["customData"]["event"]["id"] == failed["context"]["id"]  # triggered by the gate's outcome
    assert undone["context"]["chainId"] == failed["context"]["chainId"]
    workload = await kube_client.request("GET", f"/apis/apps/v1/namespaces/{namespace}/deployments/web")
    assert workload["spec"]["template"]["spec"]["containers"][0]["image"] == f"registry.invalid/web@{OLD}"
    assert (await kube_client.request("GET", f"{core}/configmaps/web-config"))["data"] == {"MODE": "one"}
