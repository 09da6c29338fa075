"""The snapshot store on the local control plane: the newest ``keep`` per workload, Secrets as stored."""

from __future__ import annotations

from handlers.kubernetes import bundles
from tests.integration.k8s.conftest import CLUSTER


def bundle(image: str) -> dict:
    template = {"spec": {"containers": [{"name": "app", "image": image}]}}
    return {"workload": {"kind": "Deployment", "namespace": "web", "name": "web"}, "revision": bundles.revision(template),
            "generation": 1, "template": template, "configMaps": {}, "secrets": {"s": {"data": {"k": "dg=="}}}}


async def test_the_newest_keep_snapshots_are_kept_and_a_revision_again_becomes_the_newest(kube_client, store_namespace):
    one, two, three = bundle("a"), bundle("b"), bundle("c")
    for each in (one, two, three):
        await bundles.store(kube_client, store_namespace, CLUSTER, each, keep=2)
    kept = await bundles.load(kube_client, store_namespace, CLUSTER, "Deployment", "web", "web")
    assert [b["revision"] for b in kept] == [three["revision"], two["revision"]]
    await bundles.store(kube_client, store_namespace, CLUSTER, two, keep=2)  # rolled back to revision two
    kept = await bundles.load(kube_client, store_namespace, CLUSTER, "Deployment", "web", "web")
    assert [b["revision"] for b in kept] == [two["revision"], three["revision"]]
    assert kept[0]["secrets"] == {"s": {"data": {"k": "dg=="}}}
    stored = await kube_client.request("GET", f"/api/v1/namespaces/{store_namespace}/secrets",
                                       query={"labelSelector": bundles.LABEL})
    assert {s["type"] for s in stored["items"]} == {"trigger-router.dev/snapshot"} and len(stored["items"]) == 2
    # Another workload's snapshots are its own.
    assert await bundles.load(kube_client, store_namespace, CLUSTER, "Deployment", "web", "api") == []
