"""Two ``serve`` replicas, one watcher: the holder of the watch's Lease, handed over on SIGKILL.

Real processes against the local control plane and a real nats-server. Exactly one replica holds
the Lease (its identity is in it) and publishes; both answer HTTP. Killing the holder with SIGKILL
hands the Lease over once it expires, and a rollout that completes while nobody holds it is
published exactly once: counted as publish lines in both replicas' logs (JetStream would hide a
second copy, so the stream alone could not tell).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from handlers.sources.kubernetes import leases, state
from tests.integration.k8s import watching
from tests.integration.k8s.conftest import CLUSTER, apply_deployment, deployment
from tests.integration.k8s.test_watch_resilience import IMAGES, rolled_out, set_image
from tests.support import processes, routers
from tests.support.ports import free_ports  # noqa: F401 (test_drift imports it from here)

LEASE_DURATION = 4.0


def start(tmp_path: Path, name: str, nats_url: str, kubeconfig: Path, namespace: str, port: int,
          **extra_env: str) -> subprocess.Popen:
    watches = [{"group": "apps", "kind": "Deployment", "namespaces": [namespace]}]
    env = {**os.environ, "TRIGGER_ROUTER_NATS__URL": nats_url, "TRIGGER_ROUTER_HTTP__PORT": str(port),
           "TRIGGER_ROUTER_STATE_DIR": str(tmp_path / name), "TRIGGER_ROUTER_KUBERNETES__KUBECONFIG": str(kubeconfig),
           "TRIGGER_ROUTER_KUBERNETES__CLUSTER": CLUSTER, "TRIGGER_ROUTER_KUBERNETES__WATCHES": json.dumps(watches),
           "TRIGGER_ROUTER_KUBERNETES__LEADER_ELECTION__LEASE_DURATION": f"{LEASE_DURATION}s",
           "TRIGGER_ROUTER_KUBERNETES__LEADER_ELECTION__NAMESPACE": namespace,
           "TRIGGER_ROUTER_KUBERNETES__LEADER_ELECTION__IDENTITY": name,
           "TRIGGER_ROUTER_KUBERNETES__MAX_BACKOFF": "1s", **extra_env}
    with open(tmp_path / f"{name}.log", "a") as log:
        return subprocess.Popen([sys.executable, "-m", "router.cli", "serve"], env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


def logs(tmp_path: Path, names: list[str]) -> list[Path]:
    return [tmp_path / f"{name}.log" for name in names]


def publications(tmp_path: Path, names: list[str], event_type: str, deployment_name: str) -> list[str]:
    """Publish lines of ``event_type`` about ``deployment_name`` in the replicas' logs."""
    pattern = re.compile(rf"{re.escape(event_type)} \S+ \(\S+/{re.escape(deployment_name)}\)")
    return [f"{name}: {line}" for name in names for line in (tmp_path / f"{name}.log").read_text().splitlines()
            if pattern.search(line)]


async def holder(client, namespace: str, lease: str) -> str | None:
    try:
        found = await client.request("GET", f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{lease}")
    except Exception:  # noqa: BLE001 - not created yet
        return None
    return (found.get("spec") or {}).get("holderIdentity")


async def test_one_replica_watches_and_a_killed_holder_hands_over_losing_nothing(
        tmp_path, nats_server, kube_cluster, kube_client, namespace, edge):
    names = ["replica-a", "replica-b"]
    ports = free_ports(2)
    replicas = {name: start(tmp_path, name, nats_server.url, kube_cluster.kubeconfig, namespace, port)
                for name, port in zip(names, ports)}
    lease = leases.lease_name(state.key(CLUSTER, "apps", "v1", "Deployment", namespace, None))
    try:
        first = await routers.until(lambda: holder(kube_client, namespace, lease), 60, "a first holder",
                                    *logs(tmp_path, names))
        assert first in names
        listed = await kube_client.request("GET", f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases")
        assert [item["metadata"]["name"] for item in listed["items"]] == [lease]
        await routers.until(lambda: _true(all(healthy(port) for port in ports)), 60, "both replicas serving HTTP",
                            *logs(tmp_path, names))

        await apply_deployment(kube_client, namespace, deployment("web", IMAGES[0], 1))
        await watching.wait_for_events(edge, lambda s: len(watching.of_type(s, "rollout_completed")) == 1)
        assert [line.split(":")[0] for line in publications(
            tmp_path, names, "io.k8s.deployment.rollout_completed", "web")] == [first]

        # SIGKILL the holder, then roll out while nobody holds the lease.
        killed_at = time.monotonic()
        os.killpg(replicas[first].pid, signal.SIGKILL)
        replicas[first].wait(10)
        await set_image(kube_client, namespace, IMAGES[1])
        await rolled_out(kube_client, namespace, IMAGES[1])
        survivor = next(name for name in names if name != first)
        await routers.until(lambda: _is(holder(kube_client, namespace, lease), survivor), 60, "the handover",
                            *logs(tmp_path, names))
        handover = time.monotonic() - killed_at
        print(f"handover after SIGKILL: {handover:.1f} s (lease duration {LEASE_DURATION:g} s)")
        assert handover < 3 * LEASE_DURATION + 10, handover  # a hang guard, not a benchmark

        await watching.wait_for_events(edge, lambda s: len(watching.of_type(s, "rollout_completed")) == 2)
        lines = publications(tmp_path, names, "io.k8s.deployment.rollout_completed", "web")
        # One completion published by the first holder before the kill, one by the survivor after it.
        by_replica = {name: [line for line in lines if line.startswith(f"{name}: ")] for name in names}
        assert len(by_replica[first]) == 1 and len(by_replica[survivor]) == 1, lines
        assert not any(line.endswith("duplicate") for line in lines), lines
        assert healthy(ports[names.index(survivor)])
    finally:
        for process in replicas.values():
            processes.stop_group(process, grace=30)
    stopped = {name: process.returncode for name, process in replicas.items()}
    assert stopped[survivor] == 0, stopped


async def _true(value: bool) -> bool:
    return value


async def _is(value, expected) -> bool:
    return await value == expected


async def test_a_clean_stop_releases_the_lease_at_once(tmp_path, nats_server, kube_cluster, kube_client, namespace):
    names = ["solo"]
    (port,) = free_ports(1)
    process = start(tmp_path, "solo", nats_server.url, kube_cluster.kubeconfig, namespace, port)
    lease = leases.lease_name(state.key(CLUSTER, "apps", "v1", "Deployment", namespace, None))
    try:
        assert await routers.until(lambda: holder(kube_client, namespace, lease), 60, "holding",
                                   *logs(tmp_path, names)) == "solo"
        os.killpg(process.pid, signal.SIGTERM)
        assert process.wait(30) == 0
        assert await holder(kube_client, namespace, lease) is None
    finally:
        processes.stop_group(process)
