"""Watch state that scales: one KV entry per object, written only on change; lists that survive 410.

Against the local control plane and a real nats-server. Pods where writes are counted; ConfigMaps
where lists are paged (the generic observer with a ``flagged`` condition: cheap to create by the
thousand, and every change is a ``changed`` transition to count).
"""

from __future__ import annotations

import asyncio
import json

import nats
import pytest

from handlers.sources.kubernetes import state
from router.plugins import kv
from tests.integration.k8s import watching
from tests.kubeplane import fixture as kube_fixture

FLAGGED = {"ConfigMap": {"conditions": [{"name": "flagged", "path": "data.flag", "equals": "on"}]}}


def config_map(name: str, flag: str = "on", **extra: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"flag": flag, **extra}}


async def create_config_maps(client, namespace: str, count: int, prefix: str = "cm") -> None:
    semaphore = asyncio.Semaphore(16)

    async def one(i: int) -> None:
        async with semaphore:
            await client.request("POST", f"/api/v1/namespaces/{namespace}/configmaps", body=config_map(f"{prefix}-{i}"))
    await asyncio.gather(*(one(i) for i in range(count)))


async def set_flag(client, namespace: str, name: str, flag: str) -> dict:
    return await client.request("PATCH", f"/api/v1/namespaces/{namespace}/configmaps/{name}",
                                content_type="application/merge-patch+json", body={"data": {"flag": flag}})


async def passed(watch, client, namespace: str, timeout: float = 60.0) -> None:
    """``watch`` has handled every change made in ``namespace`` so far (a sentinel ConfigMap's version)."""
    created = await client.request("POST", f"/api/v1/namespaces/{namespace}/configmaps",
                                   body=config_map(f"sentinel-{id(object())}", flag="off"))
    target = int(created["metadata"]["resourceVersion"])
    async with asyncio.timeout(timeout):
        while int(watch.memory.resource_version or 0) < target:
            await asyncio.sleep(0.1)


async def bucket_values(nats_url: str, bucket: str = "TR_KUBE_WATCH") -> dict[str, bytes]:
    """Every live entry, encoded as stored. Read through ``Bucket.scan``: nats-py's ``keys()``
    races its own "initial values done" marker on a busy server and can answer NoKeysError."""
    nc = await nats.connect(nats_url)
    try:
        found = await kv.open_bucket(nc.jetstream(), bucket, description="test", what="watch state")
        return {key: json.dumps(value, separators=(",", ":")).encode()
                for prefix in ("kubeplane",) async for key, value in found.scan(prefix)}
    finally:
        await nc.close()


def pod(name: str) -> dict:
    # Bound to kwok's node directly: kwok plays the kubelet (Running, Ready), no scheduler needed.
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "scale"}},
            "spec": {"nodeName": "kwok-node-0", "containers": [{"name": "app", "image": "registry.invalid/app"}]}}


async def test_one_entry_per_pod_written_only_when_its_summary_changes(edge, kube_cluster, kube_client, namespace):
    config = watching.settings(edge.nats_url, kube_cluster.kubeconfig, namespace, kinds=("Pod",))
    running = await watching.watch(config, edge.bus, kube_client)
    try:
        (watch,) = running.watches
        semaphore = asyncio.Semaphore(16)

        async def create(i: int) -> None:
            async with semaphore:
                await kube_client.request("POST", f"/api/v1/namespaces/{namespace}/pods", body=pod(f"p-{i}"))
        await asyncio.gather(*(create(i) for i in range(600)))
        async with asyncio.timeout(180):  # kwok reports them Running and Ready
            while sum(1 for s in watch.memory.objects.values() if s.get("ready")) < 600:
                await asyncio.sleep(0.2)

        values = await bucket_values(edge.nats_url)
        assert len([k for k in values if ".obj." in k]) == 600
        assert len([k for k in values if k.endswith(".pos")]) == 1
        assert max(len(v) for v in values.values()) < 64 * 1024

        before = watch.store.writes
        for i in range(100):  # label changes leave a pod's summary as it is: no object writes
            await kube_client.request("PATCH", f"/api/v1/namespaces/{namespace}/pods/p-{i}",
                                      content_type="application/merge-patch+json",
                                      body={"metadata": {"labels": {"touched": "yes"}}})
        last = await kube_client.request("PATCH", f"/api/v1/namespaces/{namespace}/pods/p-100",
                                         content_type="application/merge-patch+json",
                                         body={"metadata": {"labels": {"touched": "yes"}}})
        async with asyncio.timeout(60):
            while int(watch.memory.resource_version or 0) < int(last["metadata"]["resourceVersion"]):
                await asyncio.sleep(0.1)
        # 101 events: positions at most once a second, no summary written.
        assert watch.store.writes - before <= 10, watch.store.writes - before
        assert running.published == 0
    finally:
        await running.stop()


async def test_a_410_while_paging_the_first_list_restarts_it_and_replays_nothing(edge, kube_cluster, kube_client,
                                                                                namespace):
    await create_config_maps(kube_client, namespace, 1100)  # three pages of 500
    config = watching.settings(edge.nats_url, kube_cluster.kubeconfig, namespace, kinds=("ConfigMap",), **FLAGGED)
    original = kube_client.request
    compactions = []

    async def compacting(method, path, **kwargs):
        answer = await original(method, path, **kwargs)
        query = kwargs.get("query") or {}
        if query.get("limit") and query.get("continue") is None and not compactions:
            # Between the first and the second page: move etcd on and compact past the list's revision.
            await original("POST", f"/api/v1/namespaces/{namespace}/configmaps", body=config_map("mover", "off"))
            try:
                compactions.append(kube_cluster.compact())
            except kube_fixture.NotLocalCluster as error:
                pytest.skip(str(error))
        return answer

    kube_client.request = compacting
    try:
        running = await watching.watch(config, edge.bus, kube_client)
    finally:
        kube_client.request = original
    try:
        (watch,) = running.watches
        assert compactions and watch.list_restarts == 1
        await passed(watch, kube_client, namespace)
        assert running.published == 0, "objects that existed before the watch were published as news"
        assert len(watch.memory.objects) >= 1100

        await set_flag(kube_client, namespace, "cm-7", "off")
        await set_flag(kube_client, namespace, "cm-7", "on")
        await passed(watch, kube_client, namespace)
    finally:
        await running.stop()
    # Each change of a ConfigMap is "changed" (the generic observer), the second flip "flagged" too.
    assert sorted(e.type for e in await edge.stored()) == [
        "io.k8s.configmap.changed", "io.k8s.configmap.changed", "io.k8s.configmap.flagged"]
    assert running.published == 3


async def test_a_restart_reads_the_summaries_back_and_replays_nothing(edge, kube_cluster, kube_client, namespace):
    await create_config_maps(kube_client, namespace, 300)
    config = watching.settings(edge.nats_url, kube_cluster.kubeconfig, namespace, kinds=("ConfigMap",), **FLAGGED)
    first = await watching.watch(config, edge.bus, kube_client)
    await set_flag(kube_client, namespace, "cm-3", "off")
    await passed(first.watches[0], kube_client, namespace)
    await first.stop()

    await set_flag(kube_client, namespace, "cm-3", "on")  # while no router watches
    second = await watching.watch(config, edge.bus, kube_client)
    try:
        (watch,) = second.watches
        assert len(watch.memory.objects) >= 300
        await passed(watch, kube_client, namespace)
        # What changed while down, once: "changed" and "flagged" of cm-3, nothing of the other 299.
        assert second.published == 2 and second.duplicates == 0
    finally:
        await second.stop()


async def test_state_of_an_earlier_release_is_converted(nats_server):
    nc = await nats.connect(nats_server.url)
    try:
        store = await state.Store.open(nc.jetstream(), "TR_KUBE_WATCH")
        legacy = {"resourceVersion": "41", "objects": {"uid-a": {"flagged": True}, "uid-b": {"flagged": False}}}
        await store.bucket.put("c.core.v1.ConfigMap.ns.abc", legacy)
        loaded = await store.load("c.core.v1.ConfigMap.ns.abc")
        assert (loaded.resource_version, loaded.objects) == ("41", legacy["objects"])
        again = await state.Store(store.bucket).load("c.core.v1.ConfigMap.ns.abc")
        assert (again.resource_version, again.objects) == ("41", legacy["objects"])
        entries = {key: value async for key, value in store.bucket.scan("c")}
        assert sorted(entries) == ["c.core.v1.ConfigMap.ns.abc.obj.uid-a", "c.core.v1.ConfigMap.ns.abc.obj.uid-b",
                                   "c.core.v1.ConfigMap.ns.abc.pos"]
        assert entries["c.core.v1.ConfigMap.ns.abc.obj.uid-a"]["summary"] == {"flagged": True}
    finally:
        await nc.close()
