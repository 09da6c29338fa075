"""``rollback`` of a Helm-managed workload is ``helm rollback`` of its release (local control plane).

A tiny chart (a ConfigMap and a Deployment) is installed at revision 1 and upgraded to revision 2
with a new image and new configuration; ``rollback`` sees ``meta.helm.sh/release-name`` and runs the
real ``helm`` (the one tests/kubeplane builds), so Helm's own history says revision 3 = revision 1,
and the kwok pods run revision 1's digest again.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from handlers.actions import rollback
from handlers.kubernetes import client as kube
from handlers.kubernetes.settings import KubernetesSettings
from router.model import events
from router.plugins import actions
from tests.integration.k8s.conftest import CLUSTER
from tests.kubeplane import build

OLD, NEW = "sha256:" + "aa" * 32, "sha256:" + "bb" * 32
CHART = {
    "Chart.yaml": "apiVersion: v2\nname: web\nversion: 0.1.0\n",
    "values.yaml": "image: registry.invalid/web\nmode: one\n",
    "templates/web.yaml": """\
apiVersion: v1
kind: ConfigMap
metadata: {name: web-config}
data: {MODE: "{{ .Values.mode }}"}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: app
          image: "{{ .Values.image }}"
          envFrom: [{configMapRef: {name: web-config}}]
""",
}


@pytest.fixture
def helm(tmp_path, kube_cluster):
    tools = build.ensure_tools()
    chart = tmp_path / "chart"
    for name, text in CHART.items():
        (chart / name).parent.mkdir(parents=True, exist_ok=True)
        (chart / name).write_text(text)
    env = {**os.environ, "HOME": str(tmp_path), "KUBECONFIG": str(kube_cluster.kubeconfig)}

    def run(*args: str) -> str:
        done = subprocess.run([str(tools.helm), *args], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr + done.stdout
        return done.stdout
    run.chart = chart
    run.binary = str(tools.helm)
    return run


async def test_a_helm_release_is_rolled_back_by_helm(helm, kube_cluster, kube_client, namespace):
    helm("install", "web", str(helm.chart), "--namespace", namespace, "--set", f"image=registry.invalid/web@{OLD}")
    helm("upgrade", "web", str(helm.chart), "--namespace", namespace, "--set", f"image=registry.invalid/web@{NEW}",
         "--set", "mode=two")
    kube.configure(KubernetesSettings(kubeconfig=kube_cluster.kubeconfig, cluster=CLUSTER,
                                      snapshots={"helm_binary": helm.binary}))
    published: list[events.CloudEvent] = []

    async def publish(event):
        published.append(event)

    context = actions.Context("h" * 32, "undo", events.make({"id": "e", "source": "/t", "type": "t"}, {}), 60,
                              publish=publish)
    params = rollback.Rollback.model_validate({"namespace": namespace, "name": "web", "timeout": "40s"})
    result = await rollback.rollback(params, context)
    assert result.outcome == "success", result.reason
    assert result.reason.startswith(f"Deployment {namespace}/web rolled back with helm rollback of release "
                                    f"{namespace}/web: ")
    pods = [c for c in result.checks if c["name"].startswith("pod ")]
    assert pods and all(c["digest"] == OLD and c["passed"] for c in pods)
    config = await kube_client.request("GET", f"/api/v1/namespaces/{namespace}/configmaps/web-config")
    assert config["data"] == {"MODE": "one"}
    history = json.loads(helm("history", "web", "--namespace", namespace, "--output", "json"))
    assert [h["revision"] for h in history] == [1, 2, 3] and "Rollback to 1" in history[-1]["description"]
    [event] = published
    assert event.type == "io.k8s.deployment.rolled_back"
    assert event.json()["helm"] == {"release": "web", "namespace": namespace}

    # Carried out again (a redelivery): verified, not rolled back a second time (that would undo the undo).
    again = await rollback.rollback(params, context)
    assert again.outcome == "success" and again.checks[0]["output"] == "rolled back by an earlier attempt of this run"
    assert len(json.loads(helm("history", "web", "--namespace", namespace, "--output", "json"))) == 3
