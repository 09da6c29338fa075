"""``rollback`` on the local control plane: the whole bundle goes back, and no Secret value leaks.

A Deployment at revision 1 reads a ConfigMap (``envFrom``) and a Secret (a volume); revision 2
changes the image, the ConfigMap and the Secret together, as a release does. The watch records a
bundle snapshot at each rollout start (snapshots in a separate "router" namespace, as deployed);
``rollback`` must put all three back to revision 1's content, and the pods (kwok) must run
revision 1's digest. Then every event on the bus, every outcome and every log line is scanned for
the Secret's values, plain and base64. A workload whose only snapshot is its current revision
cannot be rolled back: the run ends ``error`` and says why.
"""

from __future__ import annotations

import base64
import json
import logging

from handlers.kubernetes import client as kube
from router.model import events
from tests.integration.conftest import make_settings
from tests.integration.k8s import watching
from tests.integration.k8s.conftest import apply_deployment, deployment
from tests.integration.test_routing import outcomes_for, start_routing, stop

OLD, NEW = "sha256:" + "aa" * 32, "sha256:" + "bb" * 32
SECRET_1, SECRET_2 = "hunter2-revision-one", "correct-horse-revision-two"

RULE = """
kind: TriggerRule
metadata: {{name: undo}}
spec:
  filters: [{{exact: {{type: dev.example.undo}}}}]
  policy: {{timeout: 60s}}
  action:
    rollback: {{namespace: {namespace}, name: "{{{{ data.name }}}}", timeout: 40s}}
"""


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def web(image: str) -> dict:
    manifest = deployment("web", f"registry.invalid/web@{image}", replicas=1)
    pod = manifest["spec"]["template"]["spec"]
    pod["containers"][0]["envFrom"] = [{"configMapRef": {"name": "web-config"}}]
    pod["volumes"] = [{"name": "credentials", "secret": {"secretName": "web-secret"}}]
    pod["containers"][0]["volumeMounts"] = [{"name": "credentials", "mountPath": "/etc/credentials"}]
    return manifest


async def put(client, path: str, change) -> None:
    found = await client.request("GET", path)
    change(found)
    await client.request("PUT", path, body=found)


async def test_rollback_restores_configmap_secret_and_template_and_leaks_no_secret(
        edge, tmp_path, kube_cluster, kube_client, namespace, store_namespace, caplog):
    caplog.set_level(logging.DEBUG)
    settings = make_settings(
        edge.nats_url, KUBERNETES__KUBECONFIG=str(kube_cluster.kubeconfig), KUBERNETES__CLUSTER="kubeplane",
        KUBERNETES__WATCHES=json.dumps([{"group": "apps", "kind": "Deployment", "namespaces": [namespace]}]),
        KUBERNETES__SNAPSHOTS__ENABLED="true", KUBERNETES__SNAPSHOTS__NAMESPACE=store_namespace)
    kube.configure(settings.kubernetes)
    core = f"/api/v1/namespaces/{namespace}"
    await kube_client.request("POST", f"{core}/configmaps", body={
        "metadata": {"name": "web-config"}, "data": {"GREETING": "hello from revision 1"}})
    await kube_client.request("POST", f"{core}/secrets", body={
        "metadata": {"name": "web-secret"}, "data": {"password": b64(SECRET_1)}})
    running = await watching.watch(settings, edge.bus, kube_client)
    tasks = await start_routing(edge, tmp_path, RULE.format(namespace=namespace))
    try:
        await apply_deployment(kube_client, namespace, web(OLD))
        await watching.wait_for_events(edge, lambda s: len(watching.of_type(s, "rollout_completed")) == 1)
        # Revision 2: configuration and image change together.
        await put(kube_client, f"{core}/configmaps/web-config",
                  lambda cm: cm.update(data={"GREETING": "hello from revision 2", "EXTRA": "new key"}))
        await put(kube_client, f"{core}/secrets/web-secret", lambda s: s.update(data={"password": b64(SECRET_2)}))
        deployments = f"/apis/apps/v1/namespaces/{namespace}/deployments"
        await put(kube_client, f"{deployments}/web",
                  lambda d: d["spec"]["template"]["spec"]["containers"][0].update(image=f"registry.invalid/web@{NEW}"))
        await watching.wait_for_events(edge, lambda s: len(watching.of_type(s, "rollout_completed")) == 2)

        await edge.bus.publish(events.make({"id": "undo-web", "source": "/tests", "type": "dev.example.undo"},
                                           {"name": "web"}))
        *_, finished = await outcomes_for(edge, 3, timeout=90)
        stored = await watching.wait_for_events(edge, lambda s: watching.of_type(s, "rolled_back"))
        outcomes = await edge.stored("TR_OUTCOMES")
    finally:
        await stop(tasks)
        await running.stop()

    content = finished["subject"]["content"]
    assert content["outcome"] == "success", content
    assert content["reason"].startswith(f"Deployment {namespace}/web rolled back to revision ")
    config = await kube_client.request("GET", f"{core}/configmaps/web-config")
    secret = await kube_client.request("GET", f"{core}/secrets/web-secret")
    assert config["data"] == {"GREETING": "hello from revision 1"}  # the key revision 2 added is gone too
    assert secret["data"] == {"password": b64(SECRET_1)}
    run_id = finished["customData"]["runId"]
    for restored in (config, secret):
        assert restored["metadata"]["annotations"]["trigger-router.dev/rolled-back-by"] == run_id
    workload = await kube_client.request("GET", f"/apis/apps/v1/namespaces/{namespace}/deployments/web")
    assert workload["spec"]["template"]["spec"]["containers"][0]["image"] == f"registry.invalid/web@{OLD}"
    pods = [c for c in finished["customData"]["checks"] if c["name"].startswith("pod ")]
    assert pods and all(c["digest"] == OLD and c["expectedDigest"] == OLD and c["passed"] for c in pods)

    [rolled_back] = watching.of_type(stored, "io.k8s.deployment.rolled_back")
    restored = rolled_back.json()["restored"]
    assert [e["name"] for e in restored["configMaps"]] == ["web-config"]
    assert [e["name"] for e in restored["secrets"]] == ["web-secret"]
    assert restored["secrets"][0]["hash"].startswith("sha256:")
    started = [e.json()["snapshot"] for e in watching.of_type(stored, "rollout_started") if e.source.endswith("/web")]
    assert len(started) >= 2 and started[0]["secrets"][0]["hash"] == restored["secrets"][0]["hash"]
    assert started[0]["store"].startswith(f"Secret {store_namespace}/tr-snapshot-")

    # No Secret value anywhere a user or an operator reads: the bus (events, outcomes) and the logs.
    everything = [json.dumps(dict(e.attributes)) + (e.data or b"").decode() for e in stored + outcomes]
    for value in (SECRET_1, SECRET_2):
        for spelling in (value, b64(value)):
            assert not [text for text in everything if spelling in text], spelling
            assert spelling not in caplog.text, spelling


async def test_rollback_without_a_previous_snapshot_ends_error_with_the_reason(
        edge, tmp_path, kube_cluster, kube_client, namespace, store_namespace):
    settings = make_settings(
        edge.nats_url, KUBERNETES__KUBECONFIG=str(kube_cluster.kubeconfig), KUBERNETES__CLUSTER="kubeplane",
        KUBERNETES__WATCHES=json.dumps([{"group": "apps", "kind": "Deployment", "namespaces": [namespace]}]),
        KUBERNETES__SNAPSHOTS__ENABLED="true", KUBERNETES__SNAPSHOTS__NAMESPACE=store_namespace)
    kube.configure(settings.kubernetes)
    tasks = await start_routing(edge, tmp_path, RULE.format(namespace=namespace))
    try:
        # Created before any snapshot was recorded: the current revision has none.
        await apply_deployment(kube_client, namespace, deployment("web", f"registry.invalid/web@{OLD}", 1))
        await edge.bus.publish(events.make({"id": "undo-none", "source": "/tests", "type": "dev.example.undo"},
                                           {"name": "web"}))
        *_, finished = await outcomes_for(edge, 3, timeout=60)
    finally:
        await stop(tasks)
    content = finished["subject"]["content"]
    assert content["outcome"] == "error"
    assert f"Deployment {namespace}/web: no snapshot of the current revision " in content["reason"]
    assert "so the revision before it is unknown (snapshots: none;" in content["reason"]
    workload = await kube_client.request("GET", f"/apis/apps/v1/namespaces/{namespace}/deployments/web")
    assert "trigger-router.dev/rolled-back-by" not in (workload["metadata"].get("annotations") or {})
