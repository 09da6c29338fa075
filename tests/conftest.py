"""Shared fixtures: real servers, never mocks, where users have real ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.plugins import catalog
from tests.support import ports
from tests.support.natscluster import NatsCluster
from tests.support.natsserver import NatsServer

# As in the CLI: plug-ins register their settings sections (github, registries, kubernetes, ...)
# before any settings are loaded.
catalog.load()

# The local Kubernetes control plane (session fixture ``kube_cluster``), built once and cached.
pytest_plugins = ["tests.kubeplane.fixture"]

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


@pytest.fixture
def nats_server(tmp_path):
    server = NatsServer(tmp_path / "jetstream").start()
    yield server
    server.stop()


@pytest.fixture
def nats_cluster(tmp_path):
    """Three nats-servers forming one JetStream cluster; teardown proves none is left running."""
    cluster = NatsCluster(tmp_path / "cluster").start()
    yield cluster
    cluster.stop()
    assert not cluster.leftovers(), f"nats-servers left running: {cluster.leftovers()}"


@pytest.fixture
def free_port() -> int:
    return ports.free_port()
