"""The largest objects the apiserver stores neither stall the watch nor crash it.

Issue #14 asks for "a watched object with a 1 MiB annotation". The apiserver refuses those itself
(``metadata.annotations: Too long: may not be more than 262144 bytes``), so the test uses the
largest objects it accepts: a ConfigMap with 1 MiB of data (its own limit) made of ``<``, which the
apiserver writes as ``\\u003c``, so its watch line is 6 MiB, over the 4 MiB at which aiohttp's
``readline()`` raised ``LineTooLong`` and the watch retried that object forever; and a Deployment
with a 250 KiB annotation. With ``kubernetes.max_object_bytes`` above their size they are
delivered; below it they are skipped with one log line each and counted, the watch position moves
past them, and a small object changed after them still produces its transition.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from handlers.kubernetes import client as kube
from handlers.kubernetes.settings import KubernetesSettings
from tests.integration.k8s import watching
from tests.integration.k8s.conftest import apply_deployment, deployment

MiB = 1024 * 1024
DATA_LIMIT = MiB
"""The apiserver's limit on a ConfigMap's data (``Too long: may not be more than 1048576 bytes``)."""
BODY_ROOM = 256
"""Bytes short of the limit, so the request body stays under aiohttp's 1 MiB "large body" warning."""
DIGEST = "sha256:" + "b7" * 32
READY = {"ConfigMap": {"conditions": [{"name": "ready", "path": "data.state", "equals": "ready"}]}}


async def watch_with(kube_cluster, edge, namespace: str, kinds, max_object_bytes: int | None):
    settings = KubernetesSettings(kubeconfig=kube_cluster.kubeconfig, cluster="kubeplane",
                                  **({"max_object_bytes": max_object_bytes} if max_object_bytes else {}))
    client = await kube.Client.connect(settings)
    config = watching.settings(edge.nats_url, kube_cluster.kubeconfig, namespace, kinds=kinds, **READY)
    return client, await watching.watch(config, edge.bus, client)


async def position(running: watching.Running, version: str, timeout: float = 30.0) -> None:
    """Wait until the watch has moved to ``version`` (what it would resume from after a restart)."""
    [watch] = running.watches
    async with asyncio.timeout(timeout):
        while int(watch.memory.resource_version or 0) < int(version):
            await asyncio.sleep(0.1)


def ready_names(stored) -> list[str]:
    return [e.source.rsplit("/", 1)[1] for e in watching.of_type(stored, "io.k8s.configmap.ready")]


@pytest.mark.parametrize("max_object_bytes,delivered", [(None, True), (4 * MiB, False)])
async def test_configmap_of_one_mebibyte(edge, kube_cluster, kube_client, namespace, caplog,
                                         max_object_bytes, delivered):
    client, running = await watch_with(kube_cluster, edge, namespace, ("ConfigMap",), max_object_bytes)
    configmaps = f"/api/v1/namespaces/{namespace}/configmaps"
    try:
        with caplog.at_level(logging.WARNING, logger=kube.__name__):
            blob = "<" * (DATA_LIMIT - BODY_ROOM)
            big = await kube_client.request("POST", configmaps, body={"metadata": {"name": "big"},
                                                                      "data": {"state": "ready", "blob": blob}})
            await position(running, big["metadata"]["resourceVersion"])
        await kube_client.request("POST", configmaps, body={"metadata": {"name": "after"}, "data": {"state": "ready"}})
        expected = ["big", "after"] if delivered else ["after"]
        stored = await watching.wait_for_events(edge, lambda s: ready_names(s) == expected)
    finally:
        await running.stop()
        await client.close()
    assert ready_names(stored) == expected
    assert client.malformed == 0
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    if delivered:
        assert client.oversized == 0 and not skipped
    else:
        assert client.oversized == 1
        [line] = skipped
        assert f"ADDED ConfigMap {namespace}/big at resourceVersion {big['metadata']['resourceVersion']}" in line
        size = int(line.split(": ")[-1].split()[0])
        assert 6 * len(blob) < size < 6 * len(blob) + 4096  # every "<" became "\u003c": six bytes each


@pytest.mark.parametrize("max_object_bytes,delivered", [(None, True), (128 * 1024, False)])
async def test_deployment_with_a_250_kib_annotation(edge, kube_cluster, kube_client, namespace,
                                                    max_object_bytes, delivered):
    client, running = await watch_with(kube_cluster, edge, namespace, ("Deployment",), max_object_bytes)
    try:
        big = deployment("big", f"registry.invalid/big@{DIGEST}", 1)
        big["metadata"]["annotations"] = {"example.dev/blob": "x" * (250 * 1024)}  # the limit is 256 KiB
        created = await apply_deployment(kube_client, namespace, big)
        await position(running, created["metadata"]["resourceVersion"])
        await apply_deployment(kube_client, namespace, deployment("after", f"registry.invalid/after@{DIGEST}", 1))
        expected = {"big", "after"} if delivered else {"after"}

        def completed(stored) -> set[str]:
            return {e.source.rsplit("/", 1)[1] for e in watching.of_type(stored, "rollout_completed")}

        stored = await watching.wait_for_events(edge, lambda s: completed(s) == expected)
    finally:
        await running.stop()
        await client.close()
    of_big = [e.type for e in stored if e.source.endswith("/deployments/big")]
    if delivered:
        assert "io.k8s.deployment.rollout_completed" in of_big and client.oversized == 0
    else:
        # Its creation and every status update the controllers made: each skipped, none news.
        assert of_big == [] and client.oversized >= 1
