"""Adding a registry is one new file plus one import line, proven end to end.

``tests/fixtures/plugins/acme.py`` is written exactly as ``handlers/sources/registries/acme.py``
would be. The test imports it (the one import line), and nothing else changes: its settings
section is read from the environment like any other, the edge serves ``/webhooks/acme``, and a
signed push lands in a real JetStream as the registry's event plus a CDEvents
``artifact.published``. ``catalog.isolated(keep=True)`` leaves the real catalog as it was.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from router import errors
from router.plugins import catalog
from tests.integration.conftest import make_settings, serve_edge

PLUGIN = Path(__file__).resolve().parents[1] / "fixtures" / "plugins" / "acme.py"
DIGEST = "sha256:" + "ab" * 32
PUSHED = {"id": "acme-delivery-1", "repository": "team/web", "tag": "1.4", "digest": DIGEST,
          "pushedAt": "2026-12-01T08:00:00Z"}


def import_plugin():
    """What ``from handlers.sources.registries import acme`` would do, from the fixture file."""
    spec = importlib.util.spec_from_file_location("handlers.sources.registries.acme", PLUGIN)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def acme():
    with catalog.isolated(keep=True) as plugins:
        try:
            yield import_plugin(), plugins
        finally:
            sys.modules.pop("handlers.sources.registries.acme", None)


async def test_a_new_registry_file_serves_its_webhook(acme, nats_server):
    module, plugins = acme
    assert "acme" in plugins.webhook_sources and "github" in plugins.webhook_sources
    settings = make_settings(nats_server.url, REGISTRIES__ACME__SECRETS='["acme-secret"]',
                             REGISTRIES__ACME__HOST="registry.acme.test:5000")
    assert settings.registries.acme.host == "registry.acme.test:5000"
    assert settings.registries.dockerhub.api_url == "https://registry-1.docker.io"  # the others are intact
    async with serve_edge(nats_server.url, settings) as edge:
        refused = await edge.http.post(f"{edge.url}/webhooks/acme", json=PUSHED,
                                       headers={"Authorization": "Bearer wrong"})
        assert refused.status == 401
        answer = await edge.http.post(f"{edge.url}/webhooks/acme", json=PUSHED,
                                      headers={"Authorization": "Bearer acme-secret"})
        assert answer.status == 202, await answer.text()
        stored = await edge.stored()
    assert [(e.type, e.id) for e in stored][0] == (module.ACME_PUSH, "acme-delivery-1")
    [artifact] = [e for e in stored if e.type == "dev.cdevents.artifact.published.0.3.0"]
    assert artifact.subject == f"pkg:oci/web@{DIGEST}?repository_url=registry.acme.test:5000/team/web&tag=1.4"
    assert len(stored) == 2


def test_its_settings_are_validated_like_core_ones(acme):
    with pytest.raises(errors.ConfigError) as refused:
        make_settings("nats://127.0.0.1:1", REGISTRIES__ACME__HOSTNAME="x")
    assert refused.value.path == "registries.acme.hostname" and "unknown key" in str(refused.value)


def test_without_the_import_line_there_is_no_such_source():
    """Also: after the tests above, the real catalog and settings are as they were."""
    assert "acme" not in catalog.load().webhook_sources
    with pytest.raises(errors.ConfigError) as refused:
        make_settings("nats://127.0.0.1:1", REGISTRIES__ACME__SECRETS='["x"]')
    assert refused.value.path == "registries.acme"
