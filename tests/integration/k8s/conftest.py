"""Fixtures for tests against the local Kubernetes control plane (tests/kubeplane)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from handlers.kubernetes import client as kube
from handlers.kubernetes.settings import KubernetesSettings
from router import errors

CLUSTER = "kubeplane"


@pytest.fixture
async def kube_client(kube_cluster):
    """The router's shared client, configured from the cluster's admin kubeconfig."""
    kube.configure(KubernetesSettings(kubeconfig=kube_cluster.kubeconfig, cluster=CLUSTER))
    client = await kube.shared()
    yield client
    await kube.close_shared()


@pytest.fixture
async def namespace(kube_client):
    name = f"t-{uuid.uuid4().hex[:8]}"
    await kube_client.request("POST", "/api/v1/namespaces", body={"metadata": {"name": name}})
    async with asyncio.timeout(60):  # pods cannot be created before the default ServiceAccount
        while True:
            try:
                await kube_client.request("GET", f"/api/v1/namespaces/{name}/serviceaccounts/default")
                break
            except errors.KubernetesRefused:
                await asyncio.sleep(0.2)
    yield name
    await kube_client.request("DELETE", f"/api/v1/namespaces/{name}")


@pytest.fixture
async def store_namespace(kube_client):
    """A second namespace, the router's own: where bundle snapshots are stored."""
    name = f"router-{uuid.uuid4().hex[:8]}"
    await kube_client.request("POST", "/api/v1/namespaces", body={"metadata": {"name": name}})
    yield name
    await kube_client.request("DELETE", f"/api/v1/namespaces/{name}")


def deployment(name: str, image: str, replicas: int = 2, annotations: dict | None = None) -> dict:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels, "annotations": annotations or {}},
                                  "spec": {"containers": [{"name": "app", "image": image}]}}}}


async def apply_deployment(client, namespace: str, manifest: dict) -> dict:
    return await client.request("POST", f"/apis/apps/v1/namespaces/{namespace}/deployments", body=manifest)
