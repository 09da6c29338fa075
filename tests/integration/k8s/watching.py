"""Test helpers: run the Kubernetes watch source against the local cluster, read what it published."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

from handlers.sources import kubernetes as kube_source
from router.config.settings import Settings
from router.model import events
from tests.integration.conftest import make_settings


def settings(nats_url: str, kubeconfig, namespace: str, kinds=("Deployment",), **extra) -> Settings:
    groups = {"Deployment": "apps", "StatefulSet": "apps", "DaemonSet": "apps", "Job": "batch"}
    watches = [{"group": groups.get(kind, ""), "kind": kind, "namespaces": [namespace], **extra.get(kind, {})}
               for kind in kinds]
    return make_settings(nats_url, KUBERNETES__KUBECONFIG=str(kubeconfig), KUBERNETES__CLUSTER="kubeplane",
                         KUBERNETES__WATCHES=json.dumps(watches), KUBERNETES__MAX_BACKOFF="2s")


class Running:
    """Watches running as tasks; ``stop()`` cancels them (a router going away)."""

    def __init__(self, watches):
        self.watches = watches
        self.tasks = [asyncio.create_task(w.run()) for w in watches]

    async def ready(self, timeout: float = 30.0) -> "Running":
        async with asyncio.timeout(timeout):
            await asyncio.gather(*(w.ready.wait() for w in self.watches))
        return self

    @property
    def published(self) -> int:
        return sum(w.published for w in self.watches)

    @property
    def duplicates(self) -> int:
        return sum(w.duplicates for w in self.watches)

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def caught_up(running: Running, client, namespace: str, timeout: float = 60.0) -> None:
    """Every Deployment watch of ``running`` has handled everything that happened in ``namespace`` so far.

    A sentinel Deployment (0 replicas, named ``sentinel-*``: leave its events out of counts) is
    created, and each watch must move past its resourceVersion. A watch handles events in order
    and publishes before it moves on, so whatever was still to come from earlier changes, a late
    duplicate included, is on the bus by then: a wait on state, where a sleep would only guess.
    """
    manifest = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": f"sentinel-{uuid.uuid4().hex[:8]}"},
                "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "sentinel"}},
                         "template": {"metadata": {"labels": {"app": "sentinel"}},
                                      "spec": {"containers": [{"name": "app", "image": "registry.invalid/sentinel"}]}}}}
    created = await client.request("POST", f"/apis/apps/v1/namespaces/{namespace}/deployments", body=manifest)
    target = int(created["metadata"]["resourceVersion"])
    async with asyncio.timeout(timeout):
        while not all(int(w.memory.resource_version or 0) >= target
                      for w in running.watches if w.spec.kind == "Deployment"):
            await asyncio.sleep(0.1)


def named(stored, name: str) -> list[events.CloudEvent]:
    """The events about the object ``name`` (its source ends in ``/<plural>/<name>``)."""
    return [e for e in stored if e.source.endswith(f"/{name}")]


async def watch(settings: Settings, bus, client) -> Running:
    return await Running(await kube_source.start(settings, bus, client)).ready()


async def wait_for_events(edge, predicate, timeout: float = 60.0) -> list[events.CloudEvent]:
    """Everything on TR_EVENTS, once ``predicate(events)`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        stored = await edge.stored()
        if predicate(stored):
            return stored
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; events so far: {[e.type for e in stored]}")
        await asyncio.sleep(0.3)


def of_type(stored, suffix: str) -> list[events.CloudEvent]:
    return [e for e in stored if e.type.endswith(suffix)]
