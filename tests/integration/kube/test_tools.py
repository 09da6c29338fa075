"""helm and kubectl, built from Go modules into the cache, run and talk to the local control plane.

Chart and manifest tests drive the cluster through these two binaries, so each is checked here
once: it reports the release README names, and it reaches the apiserver with the admin
kubeconfig of the `kube_cluster` fixture.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.kubeplane import build
from tests.kubeplane import fixture as kube_fixture

# Written from README ("Local Kubernetes for tests"), not read from build.py.
HELM_RELEASE = "v3.22.0"
KUBERNETES_RELEASE = "v1.36.3"
NODE = "kwok-node-0"


@pytest.fixture(scope="module")
def tools(request) -> build.Tools:
    # A cold build takes minutes: let its progress reach the terminal, as the cluster's does.
    with kube_fixture._uncaptured(request):
        return build.ensure_tools()


@pytest.fixture
def run(tmp_path):
    # helm and kubectl keep caches and config under HOME; keep them out of the user's.
    env = {**os.environ, "HOME": str(tmp_path)}
    env.pop("KUBECONFIG", None)

    def run(*args) -> str:
        result = subprocess.run([str(a) for a in args], env=env, capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 0, f"{args} exited {result.returncode}: {result.stderr}"
        return result.stdout
    return run


def test_helm_reports_the_pinned_release(tools, run):
    assert run(tools.helm, "version", "--template", "{{ .Version }}") == HELM_RELEASE
    assert HELM_RELEASE in run(tools.helm, "version")


def test_kubectl_client_is_the_control_plane_release(tools, run):
    client = json.loads(run(tools.kubectl, "version", "--client", "-o", "json"))["clientVersion"]
    assert (client["gitVersion"], client["major"], client["minor"]) == (KUBERNETES_RELEASE, "1", "36")
    assert f"Client Version: {KUBERNETES_RELEASE}" in run(tools.kubectl, "version", "--client")


def test_kubectl_gets_the_kwok_node_of_the_local_cluster(tools, run, kube_cluster):
    nodes = json.loads(run(tools.kubectl, "--kubeconfig", kube_cluster.kubeconfig,
                           "get", "nodes", "-o", "json"))["items"]
    if kube_cluster.local is None:
        assert nodes, "the TEST_KUBECONFIG cluster lists no nodes"
        return
    assert [node["metadata"]["name"] for node in nodes] == [NODE]
    ready = {c["type"]: c["status"] for c in nodes[0]["status"]["conditions"]}["Ready"]
    assert ready == "True"
    assert NODE in run(tools.kubectl, "--kubeconfig", kube_cluster.kubeconfig, "get", "nodes")
    server = json.loads(run(tools.kubectl, "--kubeconfig", kube_cluster.kubeconfig,
                            "version", "-o", "json"))["serverVersion"]
    assert server["gitVersion"] == KUBERNETES_RELEASE


def test_helm_reaches_the_local_cluster(tools, run, kube_cluster):
    releases = json.loads(run(tools.helm, "--kubeconfig", kube_cluster.kubeconfig,
                              "list", "--all-namespaces", "--output", "json"))
    assert isinstance(releases, list)
