"""The HTTP edge of ``tests/integration`` with the container-registry sources configured.

``edge`` is overridden here (same ``Edge`` object) because the registry sources read their secrets
and registry URLs from settings when the app is built; ``registry_settings`` lets a test module add
its own (a resolving registry's URL, credentials) before the edge starts.
"""

from __future__ import annotations

import json

import aiohttp
import pytest
from aiohttp import web

from router import registry, web as web_edge
from router.bus import Bus
from tests.integration.conftest import Edge, make_settings
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
    plugins = registry.load_plugins()
    bus = Bus(settings.nats, settings.bus)
    await bus.start(nats_server.url)
    await bus.wait_ready(15)
    sources = {name: factory(settings) for name, factory in plugins.webhook_sources.items()}
    runner = web.AppRunner(web_edge.make_app(settings, bus, sources))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    async with aiohttp.ClientSession() as http:
        yield Edge(f"http://127.0.0.1:{runner.addresses[0][1]}", bus, nats_server.url, settings, http)
    await runner.cleanup()
    await bus.close()


@pytest.fixture
def oci_registry(tmp_path):
    """A plain registry (no auth, no notifications): what digest resolution asks."""
    server = RegistryServer(tmp_path / "plain-registry").start()
    yield server
    server.stop()
