"""The watch keeps its promise through restarts: every transition on the bus exactly once.

"Once" is counted where it can fail: what each watch published and how many of those JetStream
refused as duplicates (ids repeat by design, so counting ids on the stream would prove nothing),
after ``watching.caught_up`` has shown the watch handled everything up to now.

- the router stops, things change, it starts again: it resumes from the stored resourceVersion
  (or, when that expired, re-lists and diffs against what it knew) and re-emits nothing old;
- the kube-apiserver restarts while a rollout is in flight: the watch reconnects, and the
  rollout's completion is emitted once;
- two routers watch the same resources: each transition is on the bus once.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter

import pytest

from handlers.kubernetes import workloads
from tests.integration.k8s import watching
from tests.integration.k8s.conftest import apply_deployment, deployment
from tests.kubeplane import fixture as kube_fixture
from tests.kubeplane import processes

IMAGES = [f"registry.invalid/web@sha256:{n * 32}" for n in ("a1", "a2", "a3", "a4")]


async def set_image(client, namespace: str, image: str) -> None:
    await client.request("PATCH", f"/apis/apps/v1/namespaces/{namespace}/deployments/web",
                         content_type="application/merge-patch+json", body={"spec": {"template": {"spec": {
                             "containers": [{"name": "app", "image": image}]}}}})


async def rolled_out(client, namespace: str, image: str) -> None:
    """Wait (reading the cluster, not the bus) until ``image`` is fully rolled out."""
    async with asyncio.timeout(60):
        while True:
            obj = await client.request("GET", f"/apis/apps/v1/namespaces/{namespace}/deployments/web")
            if workloads.template_images(obj)["app"] == image and workloads.rollout(obj).complete:
                return
            await asyncio.sleep(0.2)


def completions(stored) -> Counter:
    return Counter(e.json()["generation"] for e in watching.of_type(watching.named(stored, "web"), "rollout_completed"))


async def test_router_restart_resumes_without_replaying(edge, kube_cluster, kube_client, namespace):
    config = watching.settings(edge.nats_url, kube_cluster.kubeconfig, namespace)
    first = await watching.watch(config, edge.bus, kube_client)
    await apply_deployment(kube_client, namespace, deployment("web", IMAGES[0], 1))
    await watching.wait_for_events(edge, lambda s: completions(s)[1] == 1)
    await first.stop()

    # Down while a rollout happens: resumed from the stored resourceVersion.
    await set_image(kube_client, namespace, IMAGES[1])
    await rolled_out(kube_client, namespace, IMAGES[1])
    second = await watching.watch(config, edge.bus, kube_client)
    await watching.wait_for_events(edge, lambda s: completions(s)[2] == 1)
    await watching.caught_up(second, kube_client, namespace)
    await second.stop()
    assert second.duplicates == 0, "an old transition was published again"
    assert [w.relists for w in second.watches] == [0]

    # Down again, and the stored resourceVersion is compacted away: 410, re-list, diff.
    await set_image(kube_client, namespace, IMAGES[2])
    await rolled_out(kube_client, namespace, IMAGES[2])
    try:
        kube_cluster.compact()
    except kube_fixture.NotLocalCluster as error:
        pytest.skip(str(error))
    third = await watching.watch(config, edge.bus, kube_client)
    await watching.wait_for_events(edge, lambda s: completions(s)[3] == 1)
    await watching.caught_up(third, kube_client, namespace)
    await third.stop()
    stored = await edge.stored()
    assert [w.relists for w in third.watches] == [1]
    assert third.duplicates == 0
    assert completions(stored) == {1: 1, 2: 1, 3: 1}
    assert Counter(e.json()["generation"] for e in watching.of_type(watching.named(stored, "web"), "image_changed")) \
        == {2: 1, 3: 1}


@pytest.mark.skipif(bool(os.environ.get(kube_fixture.EXTERNAL_ENV)),
                    reason="restarts the harness's own kube-apiserver")
async def test_apiserver_restart_during_rollout(edge, kube_cluster, kube_client, namespace):
    config = watching.settings(edge.nats_url, kube_cluster.kubeconfig, namespace)
    running = await watching.watch(config, edge.bus, kube_client)
    try:
        await apply_deployment(kube_client, namespace, deployment("web", IMAGES[0], 1))
        await watching.wait_for_events(edge, lambda s: completions(s)[1] == 1)
        await set_image(kube_client, namespace, IMAGES[1])
        await restart_apiserver(kube_cluster)
        await watching.wait_for_events(edge, lambda s: completions(s)[2] == 1, timeout=90)
        await watching.caught_up(running, kube_client, namespace)
        stored = await edge.stored()
    finally:
        await running.stop()
    assert completions(stored) == {1: 1, 2: 1}
    assert running.duplicates == 0
    assert Counter(e.type for e in watching.named(stored, "web"))["io.k8s.deployment.rollout_started"] == 2


async def restart_apiserver(kube_cluster) -> None:
    """Stop the harness's kube-apiserver and start it again with the same flags and port.

    The fixture has no restart hook; its process handle (``LocalCluster._procs``) is reused so the
    harness still stops the new process at the end of the session.
    """
    local = kube_cluster.local
    old = local._procs["kube-apiserver"]
    await asyncio.to_thread(processes.terminate, old)
    local._procs["kube-apiserver"] = processes.spawn(list(old.args), local.workdir / "kube-apiserver.log",
                                                     local.workdir)
    async with asyncio.timeout(60):
        while not await asyncio.to_thread(local._api_ok, "/readyz"):
            await asyncio.sleep(0.3)


async def test_two_replicas_publish_each_transition_once(edge, kube_cluster, kube_client, namespace):
    config = watching.settings(edge.nats_url, kube_cluster.kubeconfig, namespace, kinds=("Deployment", "Job"))
    replicas = [await watching.watch(config, edge.bus, kube_client) for _ in range(2)]
    try:
        await apply_deployment(kube_client, namespace, deployment("web", IMAGES[0], 2))
        await watching.wait_for_events(edge, lambda s: completions(s)[1] >= 1)
        await set_image(kube_client, namespace, IMAGES[1])
        stored = await watching.wait_for_events(edge, lambda s: completions(s)[2] >= 1)
        for replica in replicas:  # both have handled everything: the slower one's copies are in
            await watching.caught_up(replica, kube_client, namespace)
        stored = await edge.stored()
    finally:
        for replica in replicas:
            await replica.stop()
    # Without leader election (these watches run bare) each replica publishes every transition:
    # what proves "once" is that every second copy was refused as a duplicate by JetStream.
    assert completions(stored) == {1: 1, 2: 1}
    assert replicas[0].published == replicas[1].published == len(stored)
    assert replicas[0].duplicates + replicas[1].duplicates == len(stored)
