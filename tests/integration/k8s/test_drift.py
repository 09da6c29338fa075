"""Drift on the local control plane: ``kubectl edit`` is one ``drifted`` event, a deploy none, two replicas one.

Two real ``serve`` processes watch the namespace. A Deployment created by ``helm`` is changed by a
strategic-merge patch sent as field manager ``kubectl-edit`` (what ``kubectl edit`` sends), another
by the same patch sent as ``helm``. With leader election one replica publishes; without it both do,
derive the same event id, and JetStream stores one copy.
"""

from __future__ import annotations

import pytest

from handlers.sources.kubernetes import leases, state
from tests.integration.k8s import watching
from tests.integration.k8s.conftest import CLUSTER, deployment
from tests.integration.k8s.test_leader_election import free_ports, holder, logs, publications, start
from tests.support import processes, routers

DRIFTED = "io.k8s.deployment.drifted"
EDIT = {"spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "app", "image": "registry.invalid/web:2"}]}}}}


def _watching(tmp_path, name: str) -> bool:
    text = (tmp_path / f"{name}.log").read_text() if (tmp_path / f"{name}.log").exists() else ""
    return "baseline of" in text or "resuming at" in text


async def _all_watching(tmp_path, names) -> bool:
    return all(_watching(tmp_path, name) for name in names)


@pytest.mark.parametrize("election", [True, False])
async def test_kubectl_edit_is_one_drift_event_a_deploy_none_with_two_replicas(
        tmp_path, nats_server, kube_cluster, kube_client, namespace, edge, election):
    names = ["replica-a", "replica-b"]
    replicas = [start(tmp_path, name, nats_server.url, kube_cluster.kubeconfig, namespace, port,
                      TRIGGER_ROUTER_KUBERNETES__LEADER_ELECTION__ENABLED=str(election).lower())
                for name, port in zip(names, free_ports(2))]
    collection = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    try:
        watchers = names
        if election:
            lease = leases.lease_name(state.key(CLUSTER, "apps", "v1", "Deployment", namespace, None))
            watchers = [await routers.until(lambda: holder(kube_client, namespace, lease), 60, "a holder",
                                            *logs(tmp_path, names))]
        await routers.until(lambda: _all_watching(tmp_path, watchers), 60, "the watch listing",
                            *logs(tmp_path, names))
        for name in ("web", "deployed"):
            await kube_client.request("POST", collection, query={"fieldManager": "helm"},
                                      body=deployment(name, "registry.invalid/web:1", 1))
        # The deploy first: a watch handles events in order, so once web's drift is stored, the
        # deploy's change has been looked at too.
        for name, manager in (("deployed", "helm"), ("web", "kubectl-edit")):
            await kube_client.request("PATCH", f"{collection}/{name}", query={"fieldManager": manager},
                                      content_type="application/strategic-merge-patch+json", body=EDIT)
        stored = await watching.wait_for_events(edge, lambda s: watching.of_type(s, "drifted"))
        await routers.until(lambda: _published(tmp_path, names, len(watchers)), 60, "each watcher's publish",
                            *logs(tmp_path, names))
    finally:
        for process in replicas:
            processes.stop_group(process, grace=30)
    [drifted] = watching.of_type(stored, "drifted")
    assert drifted.type == DRIFTED and drifted.subject == f"{namespace}/web"
    data = drifted.json()
    assert (data["manager"], data["operation"]) == ("kubectl-edit", "Update")
    assert data["paths"] == ["spec.replicas", "spec.template.spec.containers[name=app].image"]
    assert data["changes"] == [
        {"path": "spec.replicas", "from": 1, "to": 3},
        {"path": "spec.template.spec.containers[name=app].image", "from": "registry.invalid/web:1",
         "to": "registry.invalid/web:2"}]
    lines = publications(tmp_path, names, DRIFTED, "web")
    assert len(lines) == len(watchers), lines  # election: the holder alone; without: both, one a duplicate
    assert sum(line.endswith("duplicate") for line in lines) == len(watchers) - 1, lines
    assert publications(tmp_path, names, DRIFTED, "deployed") == []


async def _published(tmp_path, names, count: int) -> bool:
    return len(publications(tmp_path, names, DRIFTED, "web")) >= count
