"""The HTTP edge of ``tests/integration`` with the container-registry sources configured.

``edge`` is overridden here (same ``Edge`` object) because the registry sources read their secrets
and registry URLs from settings when the app is built; ``registry_settings`` lets a test module add
its own (a resolving registry's URL, credentials) before the edge starts.
"""

from __future__ import annotations

import json

import pytest

from tests.integration.conftest import make_settings, serve_edge
from tests.support.registryserver import RegistryServer

SECRET = "registry-webhook-secret"
OLD_SECRET = "registry-webhook-secret-before-rotation"
SOURCES = ("DOCKERHUB", "QUAY", "HARBOR", "DISTRIBUTION", "ECR", "GAR", "ACR")


@pytest.fixture
def registry_settings() -> dict[str, str]:
    """Extra ``TRIGGER_ROUTER_`` overrides (without the prefix) for the edge of one test."""
    return {}


@pytest.fixture
async def edge(nats_server, registry_settings):
    overrides = {f"REGISTRIES__{name}__SECRETS": json.dumps([OLD_SECRET, SECRET]) for name in SOURCES}
    overrides.update({"HTTP__MAX_BODY_BYTES": "65536", "REGISTRIES__RESOLVE_ATTEMPTS": "2",
                      "REGISTRIES__RESOLVE_TIMEOUT": "2s"})
    overrides.update(registry_settings)
    settings = make_settings(nats_server.url, **overrides)
    async with serve_edge(nats_server.url, settings) as served:
        yield served


@pytest.fixture
def oci_registry(tmp_path):
    """A plain registry (no auth, no notifications): what digest resolution asks."""
    server = RegistryServer(tmp_path / "plain-registry").start()
    yield server
    server.stop()
