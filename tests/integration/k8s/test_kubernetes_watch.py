"""The watch source on the local control plane: semantic events, CDEvents, once each."""

from __future__ import annotations

import asyncio

import pytest

from handlers.actions import kubernetes_job
from handlers.sources.kubernetes import state
from router.cli import serve as service
from router.model import event_types
from tests.integration.k8s import watching
from tests.integration.k8s.conftest import apply_deployment, deployment
from tests.integration.test_routing import outcomes_for, start_routing, stop
from tests.support import cdevents_schema

DIGEST = "sha256:" + "d1" * 32
NEW_DIGEST = "sha256:" + "d2" * 32
COMPLETED = "io.k8s.deployment.rollout_completed"

SMOKE_RULE = """
kind: TriggerRule
metadata: {{name: smoke-after-rollout}}
spec:
  filters: [{{exact: {{type: io.k8s.deployment.rollout_completed}}}}]
  policy: {{timeout: 60s}}
  action:
    kubernetesJob:
      namespace: "{{{{ data.namespace }}}}"
      digest: "{{{{ data.images[0].digest }}}}"
      job:
        metadata: {{name: smoke}}
        spec:
          template:
            metadata: {{annotations: {annotations}}}
            spec:
              containers:
                - name: smoke
                  image: registry.invalid/web-smoke:1
                  args: ["--image", "{{{{ data.images[0].repository }}}}@{{{{ data.images[0].digest }}}}"]
                  resources: {{requests: {{cpu: 10m, memory: 16Mi}}, limits: {{cpu: 100m, memory: 64Mi}}}}
"""


@pytest.mark.parametrize("annotations,outcome", [("{}", "success"),
                                                 ('{"kwok.trigger-router.dev/outcome": "fail"}', "failure")])
async def test_rollout_to_service_deployed_to_smoke_job(edge, tmp_path, kube_cluster, kube_client, namespace,
                                                        annotations, outcome):
    config = watching.settings(edge.nats_url, kube_cluster.kubeconfig, namespace)
    running = await watching.watch(config, edge.bus, kube_client)
    tasks = await start_routing(edge, tmp_path, SMOKE_RULE.format(annotations=annotations))
    try:
        await apply_deployment(kube_client, namespace, deployment("web", f"registry.invalid/team/web:1.4@{DIGEST}"))
        *_, finished = await outcomes_for(edge, 3, timeout=60)
        stored = await edge.stored()
    finally:
        await stop(tasks)
        await running.stop()
    types = [e.type for e in stored]
    assert types.count("io.k8s.deployment.rollout_started") == 1
    assert types.count(COMPLETED) == 1 and types.count(event_types.SERVICE_DEPLOYED) == 1
    [completed] = watching.of_type(stored, "rollout_completed")
    assert completed.source == f"k8s://kubeplane/namespaces/{namespace}/deployments/web"
    assert completed.json()["images"] == [{"container": "app", "image": f"registry.invalid/team/web:1.4@{DIGEST}",
                                           "repository": "registry.invalid/team/web", "digest": DIGEST,
                                           "digests": [DIGEST]}]
    # The new ReplicaSet's pod-template-hash: what a metricGate query selects the new pods by.
    pods = await kube_client.request("GET", f"/api/v1/namespaces/{namespace}/pods",
                                     query={"labelSelector": "pod-template-hash"})
    hashes = {p["metadata"]["labels"]["pod-template-hash"] for p in pods["items"]}
    assert len(hashes) == 1 and completed.json()["podTemplateHash"] == hashes.pop()
    [deployed] = watching.of_type(stored, "service.deployed.0.3.0")
    body = deployed.json()
    cdevents_schema.validate(body)
    assert body["subject"]["content"] == {
        "environment": {"id": f"kubeplane/{namespace}", "source": f"k8s://kubeplane/namespaces/{namespace}"},
        "artifactId": f"pkg:oci/web@{DIGEST}?repository_url=registry.invalid/team/web&tag=1.4"}
    assert body["context"]["links"][0]["target"]["contextId"] == completed.id
    cdevents_schema.validate(finished)
    assert finished["subject"]["content"]["outcome"] == outcome, finished["subject"]["content"]
    job_name = finished["customData"]["checks"][0]["job"]
    job = await kube_client.request("GET", f"{kubernetes_job.jobs_path(namespace)}/{job_name}")
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == f"registry.invalid/web-smoke:1@{DIGEST}"
    assert job["metadata"]["annotations"]["trigger-router.dev/event-id"] == completed.id


async def test_image_change_and_scale(edge, kube_cluster, kube_client, namespace):
    config = watching.settings(edge.nats_url, kube_cluster.kubeconfig, namespace)
    running = await watching.watch(config, edge.bus, kube_client)
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments/web"
    try:
        await apply_deployment(kube_client, namespace, deployment("web", f"registry.invalid/web@{DIGEST}", 1))
        await watching.wait_for_events(edge, lambda s: watching.of_type(s, "rollout_completed"))
        await kube_client.request("PATCH", path, content_type="application/merge-patch+json", body={"spec": {
            "template": {"spec": {"containers": [{"name": "app", "image": f"registry.invalid/web@{NEW_DIGEST}"}]}}}})
        stored = await watching.wait_for_events(edge, lambda s: watching.of_type(s, "service.upgraded.0.3.0"))
        await kube_client.request("PATCH", path, content_type="application/merge-patch+json",
                                  body={"spec": {"replicas": 2}})
        stored = await watching.wait_for_events(edge, lambda s: watching.of_type(s, "scaled"))
    finally:
        await running.stop()
    [changed] = watching.of_type(stored, "image_changed")
    assert changed.json()["changes"] == [{"container": "app", "from": f"registry.invalid/web@{DIGEST}",
                                          "to": f"registry.invalid/web@{NEW_DIGEST}"}]
    [upgraded] = watching.of_type(stored, "service.upgraded.0.3.0")
    cdevents_schema.validate(upgraded.json())
    assert upgraded.json()["subject"]["content"]["artifactId"].startswith(f"pkg:oci/web@{NEW_DIGEST}?")
    [scaled] = watching.of_type(stored, "scaled")
    assert (scaled.json()["from"], scaled.json()["to"]) == (1, 2)
    assert len(watching.of_type(stored, "rollout_completed")) == 2  # scaling is not a rollout
    assert running.duplicates == 0


async def test_jobs_pods_and_generic_conditions(edge, kube_cluster, kube_client, namespace):
    extra = {"ConfigMap": {"conditions": [{"name": "ready", "path": "data.state", "equals": "ready"}]}}
    config = watching.settings(edge.nats_url, kube_cluster.kubeconfig, namespace,
                               kinds=("Job", "Pod", "ConfigMap"), **extra)
    running = await watching.watch(config, edge.bus, kube_client)
    try:
        for name, outcome in (("passes", "pass"), ("breaks", "fail")):
            await kube_client.request("POST", kubernetes_job.jobs_path(namespace), body={
                "metadata": {"name": name}, "spec": {"backoffLimit": 0, "template": {
                    "metadata": {"annotations": {"kwok.trigger-router.dev/outcome": outcome}},
                    "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "registry.invalid/j:1"}]}}}})
        await apply_deployment(kube_client, namespace, deployment("web", f"registry.invalid/web@{DIGEST}", 1))
        configmaps = f"/api/v1/namespaces/{namespace}/configmaps"
        await kube_client.request("POST", configmaps, body={"metadata": {"name": "gate"}, "data": {"state": "waiting"}})
        await kube_client.request("PATCH", f"{configmaps}/gate", content_type="application/merge-patch+json",
                                  body={"data": {"state": "ready"}})
        pod = await _running_pod(kube_client, namespace)
        # kwok never crashes a container; the status a kubelet would write is written here instead.
        await kube_client.request("PATCH", f"/api/v1/namespaces/{namespace}/pods/{pod}/status",
                                  content_type="application/merge-patch+json", body={"status": {"containerStatuses": [{
                                      "name": "app", "image": f"registry.invalid/web@{DIGEST}", "imageID": "",
                                      "ready": False, "restartCount": 4,
                                      "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}})
        stored = await watching.wait_for_events(edge, lambda s: {"io.k8s.job.succeeded", "io.k8s.job.failed",
                                                                 "io.k8s.configmap.ready", "io.k8s.pod.crashloop"}
                                                <= {e.type for e in s})
    finally:
        await running.stop()
    jobs = {e.json()["name"]: e.type for e in stored if e.type.startswith("io.k8s.job.")}
    assert jobs == {"passes": "io.k8s.job.succeeded", "breaks": "io.k8s.job.failed"}
    [crash] = watching.of_type(stored, "io.k8s.pod.crashloop")
    assert crash.json()["owner"] == {"kind": "Deployment", "name": "web"}
    assert crash.json()["restartCount"] == 4 and crash.json()["reason"] == "CrashLoopBackOff"
    assert len(watching.of_type(stored, "io.k8s.configmap.ready")) == 1
    assert watching.of_type(stored, "io.k8s.configmap.changed")


async def _running_pod(client, namespace: str) -> str:
    async with asyncio.timeout(30):
        while True:
            pods = (await client.request("GET", f"/api/v1/namespaces/{namespace}/pods",
                                         query={"labelSelector": "app=web"}))["items"]
            if pods and pods[0].get("status", {}).get("phase") == "Running":
                return pods[0]["metadata"]["name"]
            await asyncio.sleep(0.2)


def test_event_types_are_lowercase_kind_and_transition():
    assert event_types.kubernetes("StatefulSet", "rollout_completed") == "io.k8s.statefulset.rollout_completed"
    assert event_types.kubernetes("Pod", "oomkilled") == "io.k8s.pod.oomkilled"


async def test_serve_runs_the_configured_watches(edge, tmp_path, kube_cluster, kube_client, namespace):

    config = watching.settings(edge.nats_url, kube_cluster.kubeconfig, namespace)
    config = config.model_copy(update={"http": config.http.model_copy(update={"port": 0}), "state_dir": tmp_path})
    stop_serving = asyncio.Event()
    serving = asyncio.create_task(service.serve(config, stop=stop_serving))
    try:
        # serve's watch baselines what exists first; wait until it has stored its position.
        store = await state.Store.open(edge.bus.js, config.kubernetes.state_bucket)
        key = state.key("kubeplane", "apps", "v1", "Deployment", namespace, None)
        async with asyncio.timeout(30):
            while (await store.load(key)).resource_version is None:
                await asyncio.sleep(0.2)
        await apply_deployment(kube_client, namespace, deployment("web", f"registry.invalid/web@{DIGEST}", 1))
        stored = await watching.wait_for_events(edge, lambda s: watching.of_type(s, "service.deployed.0.3.0"))
    finally:
        stop_serving.set()
        await serving
    assert [e.type for e in stored].count(COMPLETED) == 1


async def test_statefulset_rollout_and_failed_deployment(edge, kube_cluster, kube_client, namespace):
    config = watching.settings(edge.nats_url, kube_cluster.kubeconfig, namespace, kinds=("StatefulSet", "Deployment"))
    running = await watching.watch(config, edge.bus, kube_client)
    try:
        labels = {"app": "db"}
        await kube_client.request("POST", f"/apis/apps/v1/namespaces/{namespace}/statefulsets", body={
            "metadata": {"name": "db"}, "spec": {
                "replicas": 2, "serviceName": "db", "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels},
                             "spec": {"containers": [{"name": "db", "image": f"registry.invalid/db:16@{DIGEST}"}]}}}})
        stuck = deployment("stuck", f"registry.invalid/web@{DIGEST}", 1)
        stuck["spec"]["progressDeadlineSeconds"] = 1
        stuck["spec"]["template"]["spec"]["nodeSelector"] = {"nowhere": "true"}  # never scheduled
        await apply_deployment(kube_client, namespace, stuck)
        stored = await watching.wait_for_events(edge, lambda s: {
            "io.k8s.statefulset.rollout_completed", "io.k8s.deployment.rollout_failed"} <= {e.type for e in s})
    finally:
        await running.stop()
    [deployed] = watching.of_type(stored, "service.deployed.0.3.0")
    cdevents_schema.validate(deployed.json())
    assert deployed.json()["subject"]["id"] == f"{namespace}/db"
    assert deployed.json()["subject"]["content"]["artifactId"] == \
        f"pkg:oci/db@{DIGEST}?repository_url=registry.invalid/db&tag=16"
    [failed] = watching.of_type(stored, "rollout_failed")
    assert failed.json()["name"] == "stuck" and failed.json()["reason"].startswith("ProgressDeadlineExceeded")
