"""The chart's RBAC (as rendered into deploy/kustomize) grants what the router needs, and no more.

The router runs here with a token of the ``trigger-router`` ServiceAccount (TokenRequest API), bound
exactly as the chart binds it, and must still watch rollouts, run a smoke Job, verify a
rollout and hold a leader-election Lease in its own namespace, while reading a Secret, changing a
workload or writing a Lease elsewhere is forbidden.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from handlers.actions import kubernetes_job, rollout_check
from handlers.kubernetes import client as kube
from handlers.kubernetes.settings import KubernetesSettings, LeaderElection
from handlers.sources.kubernetes import leases
from router import errors
from router.model import events
from router.plugins import actions
from tests.integration.k8s import manifests, watching
from tests.integration.k8s.conftest import apply_deployment, deployment
from tests.kubeplane import cluster as kubeplane_cluster

DIGEST = "sha256:" + "c3" * 32


async def service_account_kubeconfig(client, kube_cluster, directory: Path) -> Path:
    answer = await client.request(
        "POST", "/api/v1/namespaces/trigger-router/serviceaccounts/trigger-router/token",
        body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 600}})
    path = directory / "trigger-router.kubeconfig"
    path.write_text(kubeplane_cluster.kubeconfig(kube_cluster.server, kube_cluster.ca_file.read_bytes(),
                                                 answer["status"]["token"], "trigger-router"))
    return path


async def test_router_works_with_least_privilege(edge, tmp_path, kube_cluster, kube_client, namespace):
    if kube_cluster.ca_file is None:
        pytest.skip("needs the cluster CA to build a ServiceAccount kubeconfig")
    await manifests.apply_identity(kube_client, namespace)
    await kube_client.request("POST", f"/api/v1/namespaces/{namespace}/secrets",
                              body={"metadata": {"name": "db"}, "stringData": {"password": "hunter2"}})
    kubeconfig = await service_account_kubeconfig(kube_client, kube_cluster, tmp_path)
    router = await kube.Client.connect(KubernetesSettings(kubeconfig=kubeconfig, cluster="kubeplane"))
    loop = asyncio.get_running_loop()
    kube._shared[loop] = router  # the actions use the router's identity from here on
    try:
        # RBAC bindings take effect within a moment; wait until the role is visible.
        async with asyncio.timeout(30):
            while True:
                try:
                    await router.request("GET", f"/apis/apps/v1/namespaces/{namespace}/deployments")
                    break
                except errors.KubernetesRefused:
                    await asyncio.sleep(0.3)
        config = watching.settings(edge.nats_url, kubeconfig, namespace, kinds=("Deployment", "Pod", "Job"))
        running = await watching.watch(config, edge.bus, router)
        try:
            await apply_deployment(kube_client, namespace, deployment("web", f"registry.invalid/web@{DIGEST}", 1))
            stored = await watching.wait_for_events(edge, lambda s: watching.of_type(s, "service.deployed.0.3.0"))
        finally:
            await running.stop()
        assert watching.of_type(stored, "io.k8s.deployment.rollout_completed")

        trigger = events.make({"id": "rbac", "source": "/tests", "type": "dev.example"}, {})
        context = actions.Context("d" * 32, "rbac", trigger, 30.0)
        # eventFile: the Job's ConfigMap is created too (configmaps create in job namespaces)
        job = kubernetes_job.KubernetesJob.model_validate({
            "namespace": namespace, "digest": DIGEST, "eventFile": True, "job": {
            "spec": {"template": {"spec": {"containers": [{"name": "smoke", "image": "registry.invalid/smoke:1",
                                                           "resources": {"requests": {"cpu": "10m"},
                                                                         "limits": {"cpu": "100m"}}}]}}}}})
        assert (await kubernetes_job.run_job(job, context)).outcome == "success"
        check = rollout_check.RolloutCheck.model_validate({"namespace": namespace, "name": "web",
                                                           "expectedDigest": DIGEST})
        verified = await rollout_check.rollout_check(check, context)
        assert verified.outcome == "success", verified.reason

        # The Leases of leader election: in the router's own namespace, and nowhere else.
        election = LeaderElection(lease_duration=5.0)
        own = leases.Elector(router, election, "trigger-router", f"rbac-{namespace}", "rbac test", "rbac")
        assert await own.try_acquire_or_renew() and await own.try_acquire_or_renew()
        await own.release()
        with pytest.raises(errors.KubernetesRefused) as refused:
            await leases.Elector(router, election, namespace, "rbac", "rbac test", "rbac").try_acquire_or_renew()
        assert refused.value.status == 403

        forbidden = [("GET", f"/api/v1/namespaces/{namespace}/secrets/db", None),
                     ("GET", "/api/v1/secrets", None),
                     ("PATCH", f"/apis/apps/v1/namespaces/{namespace}/deployments/web", {"spec": {"replicas": 0}}),
                     ("POST", "/apis/batch/v1/namespaces/default/jobs", job.job),
                     ("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "x"}}),
                     ("DELETE", f"/api/v1/namespaces/{namespace}/configmaps/tr-job-dddddddddddd-event", None)]
        for method, path, body in forbidden:
            with pytest.raises(errors.KubernetesRefused) as refused:
                await router.request(method, path, body=body, content_type="application/merge-patch+json"
                                     if method == "PATCH" else None)
            assert refused.value.status == 403, (method, path)
            assert "system:serviceaccount:trigger-router:trigger-router" in refused.value.message
    finally:
        kube._shared[loop] = kube_client
        await router.close()
