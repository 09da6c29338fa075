"""pytest plugin: the session-scoped `kube_cluster` fixture over a real control plane.

Registered from tests/conftest.py with `pytest_plugins = ["tests.kubeplane.fixture"]`. The first
test that asks for `kube_cluster` builds the binaries if the cache is cold (progress goes to the
terminal even under output capture, since a cold build takes many minutes) and starts one cluster
for the whole session; it is stopped when the session ends, however it ends.

`TEST_KUBECONFIG=/path/to/kubeconfig` points the fixture at an existing cluster instead: nothing
is built or started, and helpers that need the local etcd (`compact`) raise `NotLocalCluster`.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import os
import sys
from pathlib import Path

import pytest
import yaml

from tests.kubeplane import build, cluster

__all__ = ["KubeCluster", "NotLocalCluster", "kube_cluster"]

EXTERNAL_ENV = "TEST_KUBECONFIG"


class NotLocalCluster(RuntimeError):
    """The operation needs the harness's own control plane, not a TEST_KUBECONFIG cluster."""


@dataclasses.dataclass(frozen=True)
class KubeCluster:
    """What a test needs to talk to the cluster."""

    kubeconfig: Path
    """Admin kubeconfig (current context), usable by kubectl and the kubernetes clients."""
    server: str
    """API server URL, e.g. https://127.0.0.1:40123."""
    admin_token: str | None
    """Bearer token of a system:masters user; None if the external kubeconfig uses other auth."""
    ca_file: Path | None
    """PEM bundle that verifies the API server; None if the kubeconfig has no CA."""
    local: cluster.LocalCluster | None = None
    """The running harness cluster, or None when TEST_KUBECONFIG is used."""

    def api_client(self, token: str | None = None):
        """A sync `kubernetes.client.ApiClient` as admin, or as the bearer of `token`."""
        import kubernetes

        configuration = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(str(self.kubeconfig),
                                           client_configuration=configuration)
        if token is not None:
            _use_token(configuration, token)
        return kubernetes.client.ApiClient(configuration)

    async def aio_client(self, token: str | None = None):
        """A `kubernetes.aio.client.ApiClient` (close it, or use `async with`)."""
        from kubernetes import aio

        configuration = aio.client.Configuration()
        await aio.config.load_kube_config(str(self.kubeconfig),
                                          client_configuration=configuration)
        if token is not None:
            _use_token(configuration, token)
        return aio.client.ApiClient(configuration)

    def compact(self) -> int:
        """Compact etcd now; resourceVersions before the returned revision become 410 Gone."""
        if self.local is None:
            raise NotLocalCluster(f"{EXTERNAL_ENV} cluster: cannot compact its etcd")
        return self.local.compact_etcd()


@pytest.fixture(scope="session")
def kube_cluster(request: pytest.FixtureRequest):
    external = os.environ.get(EXTERNAL_ENV)
    if external:
        scratch = request.getfixturevalue("tmp_path_factory").mktemp("kube-external")
        yield from_kubeconfig(Path(external), scratch)
        return
    with _uncaptured(request):
        bin_dir = build.ensure_built()
        local = cluster.LocalCluster(bin_dir)
        local.start()
    try:
        yield KubeCluster(kubeconfig=local.kubeconfig, server=local.server,
                          admin_token=local.admin_token, ca_file=local.ca_file, local=local)
    finally:
        local.stop()


def from_kubeconfig(path: Path, scratch: Path) -> KubeCluster:
    """Describe an existing cluster from its kubeconfig's current context.

    An inline CA (certificate-authority-data) is written to `scratch` so tests can use a file.
    """
    config = yaml.safe_load(path.read_text())
    context_name = config.get("current-context")
    context = _named(config.get("contexts"), context_name)
    cluster_entry = _named(config.get("clusters"), context.get("cluster"))
    user = _named(config.get("users"), context.get("user"))
    ca_file = None
    if cluster_entry.get("certificate-authority"):
        ca_file = path.parent / cluster_entry["certificate-authority"]  # relative to the file
    elif cluster_entry.get("certificate-authority-data"):
        ca_file = scratch / "ca.crt"
        ca_file.write_bytes(base64.b64decode(cluster_entry["certificate-authority-data"]))
    return KubeCluster(kubeconfig=path, server=cluster_entry["server"],
                       admin_token=user.get("token"), ca_file=ca_file)


def _named(entries: list | None, name: str | None) -> dict:
    for entry in entries or []:
        if entry.get("name") == name:
            return next(value for key, value in entry.items() if key != "name")
    raise ValueError(f"kubeconfig has no entry named {name!r}")


def _use_token(configuration, token: str) -> None:
    # load_kube_config installs a hook that re-reads the kubeconfig's credentials before each
    # request; it would silently put the admin token back.
    configuration.refresh_api_key_hook = None
    configuration.api_key = {"authorization": f"Bearer {token}"}
    configuration.api_key_prefix = {}
    configuration.cert_file = configuration.key_file = None
    configuration.username = configuration.password = None


@contextlib.contextmanager
def _uncaptured(request: pytest.FixtureRequest):
    """Let build and start-up progress reach the terminal / CI log despite output capture."""
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if capture is None:
        yield
        return
    with capture.global_and_fixture_disabled():
        sys.stderr.flush()
        yield
