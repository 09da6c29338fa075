"""TriggerRule objects as rules: a real ``serve`` process, the local control plane, a real nats-server.

A CR is picked up and fires for an event (counted as requests the probed HTTP server received),
its status gets ``Accepted`` and ``lastRun``; an invalid CR gets ``Accepted=False`` with the message
``rules validate`` would print while the other rules keep firing; a namespaced TriggerRule cannot
act in another namespace (refused at load when it says so, a run that ends ``error`` and no Job
when a template renders it); deleting a CR removes its rule.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from aiohttp import web

from router import errors
from router.rules import crd
from tests.integration.k8s.test_crd import install
from tests.support import processes, routers

API = f"/apis/{crd.GROUP}/{crd.VERSION}"


@pytest.fixture
async def probed():
    """A local HTTP server counting requests per path: what a probe rule's runs really did."""
    hits: Counter = Counter()

    async def answer(request: web.Request) -> web.Response:
        hits[request.path] += 1
        return web.json_response({"ok": True})
    app = web.Application()
    app.router.add_get("/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    hits.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield hits
    await runner.cleanup()


def probe_rule(name: str, event_type: str, url: str) -> dict:
    return {"apiVersion": f"{crd.GROUP}/{crd.VERSION}", "kind": "TriggerRule", "metadata": {"name": name},
            "spec": {"filters": [{"exact": {"type": event_type}}],
                     "action": {"httpProbe": {"checks": [{"url": url}], "deadline": "5s", "interval": "1s"}}}}


def start_serve(tmp_path: Path, nats_url: str, kubeconfig: Path, namespace: str) -> subprocess.Popen:
    env = {**os.environ, "TRIGGER_ROUTER_NATS__URL": nats_url, "TRIGGER_ROUTER_HTTP__PORT": "0",
           "TRIGGER_ROUTER_STATE_DIR": str(tmp_path / "state"), "TRIGGER_ROUTER_KUBERNETES__KUBECONFIG": str(kubeconfig),
           "TRIGGER_ROUTER_KUBERNETES__TRIGGER_RULES__ENABLED": "true",
           "TRIGGER_ROUTER_KUBERNETES__TRIGGER_RULES__NAMESPACES": json.dumps([namespace]),
           "TRIGGER_ROUTER_KUBERNETES__TRIGGER_RULES__CLUSTER_RULES": "false",
           "TRIGGER_ROUTER_KUBERNETES__LEADER_ELECTION__NAMESPACE": namespace,
           "TRIGGER_ROUTER_KUBERNETES__LEADER_ELECTION__LEASE_DURATION": "3s",
           "TRIGGER_ROUTER_ROUTER__ACK_WAIT": "5s", "TRIGGER_ROUTER_KUBERNETES__MAX_BACKOFF": "1s"}
    with open(tmp_path / "serve.log", "a") as log:
        return subprocess.Popen([sys.executable, "-m", "router.cli", "serve"], env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


async def accepted(client, namespace: str, name: str) -> dict | None:
    try:
        obj = await client.request("GET", f"{API}/namespaces/{namespace}/triggerrules/{name}")
    except errors.KubernetesRefused:
        return None
    found = [c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == "Accepted"]
    return found[0] if found and (obj.get("status") or {}).get("observedGeneration") == obj["metadata"]["generation"] \
        else None


async def test_triggerrules_fire_report_and_stay_in_their_namespace(tmp_path, nats_server, kube_cluster, kube_client,
                                                                    namespace, probed):
    await install(kube_client)
    rules_path = f"{API}/namespaces/{namespace}/triggerrules"
    await kube_client.request("POST", rules_path, body=probe_rule("probe", "com.example.deployed", f"{probed.base}/a"))
    serve = start_serve(tmp_path, nats_server.url, kube_cluster.kubeconfig, namespace)
    log = tmp_path / "serve.log"
    try:
        condition = await routers.until(lambda: accepted(kube_client, namespace, "probe"), 60, "Accepted on probe", log)
        assert condition["status"] == "True", condition
        await routers.until(lambda: _subscribed(nats_server.url), 60, "the router's consumers", log)

        await routers.publish_events(nats_server.url, 1, "first", event_type="com.example.deployed")
        await routers.until(lambda: _true(probed["/a"] == 1), 60, "the probe of the first event", log)

        async def last_run():
            obj = await kube_client.request("GET", f"{rules_path}/probe")
            return (obj.get("status") or {}).get("lastRun")
        run = await routers.until(last_run, 60, "status.lastRun", log)
        assert run["outcome"] == "success" and len(run["runId"]) == 32, run

        # An invalid CR: Accepted=False with the validation message; the valid rule keeps firing.
        bad = probe_rule("bad", "com.example.other", f"{probed.base}/b")
        bad["spec"]["filters"] = [{"cel": 'type.startswith("com.")'}]
        await kube_client.request("POST", rules_path, body=bad)
        condition = await routers.until(lambda: accepted(kube_client, namespace, "bad"), 60, "Accepted on bad", log)
        assert condition["status"] == "False"
        assert condition["message"] == (f"TriggerRule {namespace}/bad: rule {namespace}/bad, field spec.filters[0].cel: "
                                        "unknown CEL function startswith() (known: bytes, contains, digest, double, "
                                        "duration, dyn, endsWith, getDate, getDayOfMonth, getDayOfWeek, getDayOfYear, "
                                        "getFullYear, getHours, getMilliseconds, getMinutes, getMonth, getSeconds, int, "
                                        "matches, size, startsWith, string, timestamp, type, uint)"), condition
        await routers.publish_events(nats_server.url, 1, "second", event_type="com.example.deployed")
        await routers.until(lambda: _true(probed["/a"] == 2), 60, "the probe of the second event", log)

        # Tenancy: said outright, refused at load; rendered from the event, the run ends error.
        elsewhere = {"apiVersion": f"{crd.GROUP}/{crd.VERSION}", "kind": "TriggerRule", "metadata": {"name": "elsewhere"},
                     "spec": {"filters": [{"exact": {"type": "com.example.job"}}], "action": {"kubernetesJob": {
                         "namespace": "{{ data.target }}", "job": {"spec": {"template": {"spec": {"containers": [{
                             "name": "smoke", "image": "registry.invalid/smoke:1",
                             "resources": {"requests": {"cpu": "10m"}, "limits": {"cpu": "100m"}}}]}}}}}}}}
        await kube_client.request("POST", rules_path, body=elsewhere)
        fixed = json.loads(json.dumps(elsewhere))
        fixed["metadata"]["name"] = "fixed-elsewhere"
        fixed["spec"]["action"]["kubernetesJob"]["namespace"] = "default"
        await kube_client.request("POST", rules_path, body=fixed)
        shell = probe_rule("shell", "com.example.shell", "http://x")
        shell["spec"]["action"] = {"exec": {"command": ["id"]}}
        await kube_client.request("POST", rules_path, body=shell)
        stolen = probe_rule("stolen", "com.example.stolen", "http://x")  # the router's own token, sent anywhere
        stolen["spec"]["action"] = {"cloudevent": {"url": "http://x", "headersFrom": {
            "Authorization": "/var/run/secrets/kubernetes.io/serviceaccount/token"}}}
        await kube_client.request("POST", rules_path, body=stolen)
        for name, words in (("fixed-elsewhere", "acts only there, not in 'default'"),
                            ("shell", "may use cloudevent, httpProbe, kubernetesJob, rolloutCheck, not exec"),
                            ("stolen", "field spec.action.cloudevent.headersFrom: a TriggerRule in namespace "
                                       f"'{namespace}' may not set headersFrom (it reads files on the router's host)")):
            condition = await routers.until(lambda n=name: accepted(kube_client, namespace, n), 60, f"Accepted on {name}", log)
            assert condition["status"] == "False" and words in condition["message"], condition
        condition = await routers.until(lambda: accepted(kube_client, namespace, "elsewhere"), 60, "Accepted on elsewhere", log)
        assert condition["status"] == "True"
        await routers.publish_events(nats_server.url, 1, "job", event_type="com.example.job",
                                     data=lambda i: {"target": "default"})

        async def job_run():
            obj = await kube_client.request("GET", f"{rules_path}/elsewhere")
            return (obj.get("status") or {}).get("lastRun")
        run = await routers.until(job_run, 60, "the Job rule's lastRun", log)
        assert run["outcome"] == "error" and "acts only there, not in 'default'" in run["reason"], run
        jobs = await kube_client.request("GET", "/apis/batch/v1/namespaces/default/jobs",
                                         query={"labelSelector": "trigger-router.dev/rule"})
        assert jobs["items"] == []

        # Deleting a CR removes its rule: its event fires nothing, a later one of a kept rule does.
        await kube_client.request("DELETE", f"{rules_path}/probe")
        # Accepted were probe and elsewhere; after the deletion, elsewhere only.
        await routers.until(lambda: _true(log.read_text().rsplit("TriggerRules in force", 1)[-1].startswith(": 1 accepted")),
                    60, "the rule's removal", log)
        await kube_client.request("POST", rules_path, body=probe_rule("later", "com.example.later", f"{probed.base}/c"))
        await routers.until(lambda: accepted(kube_client, namespace, "later"), 60, "Accepted on later", log)
        await routers.publish_events(nats_server.url, 1, "gone", event_type="com.example.deployed")
        await routers.publish_events(nats_server.url, 1, "kept", event_type="com.example.later")
        await routers.until(lambda: _true(probed["/c"] == 1), 60, "the kept rule's probe", log)
        assert probed["/a"] == 2, "a deleted TriggerRule still fired"
    finally:
        processes.stop_group(serve, grace=30)
    assert serve.returncode == 0, log.read_text()[-3000:]


async def _true(value: bool) -> bool:
    return value


async def _subscribed(nats_url: str) -> bool:
    async with routers.connected(nats_url) as probe:
        return await probe.subscribed()
