"""Kubernetes watch source: configured resources -> semantic ``io.k8s.*`` CloudEvents.

Runs in every ``serve`` process that has ``kubernetes.watches``; of several replicas, the holder
of each watch's Lease runs it (``leases``). Every transition has a deterministic event id that
JetStream deduplicates, so two replicas watching at once (election off, or a handover's overlap)
still store each transition once. Also points the shared Kubernetes client (used by the ``kubernetesJob`` and
``rolloutCheck`` actions) at ``kubernetes.kubeconfig`` / in-cluster / ``$KUBECONFIG``, and closes
it when ``serve`` shuts down.

- ``transitions``: per kind, which changes are worth an event (registered observers).
- ``drift``: ``drifted`` when a workload's spec is changed by a field manager that is not a deployer.
- ``emit``: transitions as CloudEvents, completed rollouts as CDEvents ``service.deployed``.
- ``watcher``: list + watch + resume + re-list for one resource.
- ``state``: resourceVersion and known objects in JetStream KV.
- ``leases``: which replica runs each watch (a Lease per watch, ``kubernetes.leader_election``).
- ``triggerrules``: TriggerRule / ClusterTriggerRule objects as a rule source (``kubernetes.trigger_rules``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from handlers.kubernetes import client as kube
from handlers.sources.kubernetes import leases, state, triggerrules  # noqa: F401 - triggerrules registers
from handlers.sources.kubernetes.watcher import ResourceWatch
from router import plugins
from router.plugins import Settings

log = logging.getLogger(__name__)


async def start(settings: Settings, bus: Any, client: kube.Client | None = None) -> list[ResourceWatch]:
    """One ``ResourceWatch`` per configured resource and namespace (not yet running)."""
    config = settings.kubernetes
    client = client or await kube.shared()
    store = await state.Store.open(bus.js, config.state_bucket, settings.bus.replicas)
    return [ResourceWatch(client, bus, store, watch, namespace, config)
            for watch in config.watches for namespace in (watch.namespaces or [None])]


@plugins.background_source("kubernetes")
async def run(settings: Settings, bus: Any) -> None:
    kube.configure(settings.kubernetes)
    if not settings.kubernetes.watches:
        return
    await bus.wait_ready()
    client = await kube.Client.connect(settings.kubernetes)  # its own connections, apart from the actions'
    try:
        watches = await start(settings, bus, client)
        election = settings.kubernetes.leader_election
        # A TaskGroup, not gather: stopped, it waits for every watch to finish (a Lease release, a
        # last position write) before the client below is closed; gather returns at the first.
        async with asyncio.TaskGroup() as group:
            if not election.enabled:
                log.info("watching %s", ", ".join(w.label for w in watches))
                for w in watches:
                    group.create_task(w.run())
            else:
                namespace = leases.lease_namespace(election, settings.kubernetes.service_account_dir)
                identity = election.identity or leases.default_identity()
                log.info("electing a watcher for %s (Leases in %s, this process is %s)",
                         ", ".join(w.label for w in watches), namespace, identity)
                for w in watches:
                    group.create_task(leases.Elector(client, election, namespace, w.key, w.label, identity).run(w.run))
    finally:
        await client.close()


@plugins.on_shutdown("kubernetes")
async def close() -> None:
    """The actions' shared client; each watch source closes its own when it is stopped."""
    await kube.close_shared()
