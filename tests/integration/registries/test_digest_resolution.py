"""Docker Hub and Quay name only a tag: the digest comes from a real registry, asked over HTTP API v2.

The registry is the local distribution registry (never a public host): plain, with htpasswd (basic
auth, file written by ``htpasswd -B`` from apache2-utils) and with token auth, where the bearer flow
runs against ``tests.support.tokenserver`` and the registry itself verifies the tokens it issues.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
from aiohttp import web

from tests.integration.registries.conftest import SECRET
from tests.support import cdevents_schema, ociimage
from tests.support.registryserver import RegistryServer
from tests.support.tokenserver import TokenServer

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "registry"
ARTIFACT = "dev.cdevents.artifact.published.0.3.0"
USER, PASSWORD = "puller", "pull-password"


@pytest.fixture
async def resolving_registry(request, tmp_path):
    """(registry, settings overrides) for the kind of registry the test asks for (default plain)."""
    kind = getattr(request, "param", "plain")
    token_runner = None
    if kind == "plain":
        server = RegistryServer(tmp_path / "registry")
    elif kind.startswith("htpasswd"):
        htpasswd = tmp_path / "htpasswd"
        htpasswd.write_text(subprocess.run(["htpasswd", "-Bbn", USER, PASSWORD], check=True,
                                           capture_output=True, text=True).stdout)
        server = RegistryServer(tmp_path / "registry", htpasswd=htpasswd)
    else:
        tokens = TokenServer({USER: PASSWORD})
        token_runner = web.AppRunner(tokens.app())
        await token_runner.setup()
        await web.TCPSite(token_runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{token_runner.addresses[0][1]}"
        server = RegistryServer(tmp_path / "registry",
                                token=tokens.registry_auth(url, tokens.write_bundle(tmp_path / "bundle.pem")))
        server.tokens = tokens
    server.start()
    overrides = {"REGISTRIES__DOCKERHUB__API_URL": server.url, "REGISTRIES__QUAY__API_URL": server.url}
    if kind in ("htpasswd", "token"):
        overrides.update({"REGISTRIES__DOCKERHUB__USERNAME": USER, "REGISTRIES__DOCKERHUB__PASSWORD": PASSWORD})
    yield server, overrides
    server.stop()
    if token_runner:
        await token_runner.cleanup()


@pytest.fixture
def registry_settings(resolving_registry):
    return resolving_registry[1]


async def push_image(tmp_path, registry: RegistryServer, reference: str, content: str, creds=None) -> str:
    root = tmp_path / f"image-{content}"
    tag = reference.rsplit(":", 1)[1]
    ociimage.layout(root, tag, content)
    return await asyncio.to_thread(ociimage.push, root, tag, f"{registry.host}/{reference}", creds=creds)


async def post(edge, source: str, fixture: str):
    return await edge.http.post(f"{edge.url}/webhooks/{source}/{SECRET}", data=(FIXTURES / fixture).read_bytes(),
                                headers={"Content-Type": "application/json"})


async def test_docker_hub_tag_is_resolved_to_the_pushed_digest(edge, resolving_registry, tmp_path):
    registry, _ = resolving_registry
    digest = await push_image(tmp_path, registry, "svendowideit/testhook:latest", "hub")

    response = await post(edge, "dockerhub", "dockerhub/push.json")
    assert response.status == 202, await response.text()
    original, artifact = await edge.stored()
    assert original.type == "com.docker.hub.push"
    assert artifact.subject == f"pkg:oci/testhook@{digest}?repository_url=docker.io/svendowideit/testhook&tag=latest"
    cdevents_schema.validate(artifact.json())
    assert original.attributes["time"] == "2014-12-03T00:22:41Z"  # push_data.pushed_at


async def test_quay_tags_are_resolved_against_the_configured_api(edge, resolving_registry, tmp_path):
    registry, _ = resolving_registry
    digest = await push_image(tmp_path, registry, "dgangaia/test:latest", "quay")

    response = await post(edge, "quay", "quay/push.json")
    assert response.status == 202, await response.text()
    [artifact] = [e for e in await edge.stored() if e.type == ARTIFACT]
    assert artifact.subject == f"pkg:oci/test@{digest}?repository_url=quay.io/dgangaia/test&tag=latest"


async def test_a_later_push_to_the_same_tag_is_a_new_event(edge, resolving_registry, tmp_path):
    registry, _ = resolving_registry
    first = await push_image(tmp_path, registry, "dgangaia/test:latest", "one")
    await post(edge, "quay", "quay/push.json")
    second = await push_image(tmp_path, registry, "dgangaia/test:latest", "two")
    await post(edge, "quay", "quay/push.json")
    digests = [e.json()["customData"]["digest"] for e in await edge.stored() if e.type == ARTIFACT]
    assert digests == [first, second]


async def test_unresolvable_tag_is_503_with_retry_after_and_nothing_published(edge, resolving_registry):
    response = await post(edge, "dockerhub", "dockerhub/push.json")  # nothing pushed: 404 from the registry
    assert response.status == 503
    assert response.headers["Retry-After"]
    assert "svendowideit/testhook:latest" in (await response.json())["detail"]
    assert await edge.stored() == []


@pytest.mark.parametrize("resolving_registry", ["htpasswd"], indirect=True)
async def test_basic_credentials_are_used_for_a_private_registry(edge, resolving_registry, tmp_path):
    registry, _ = resolving_registry
    digest = await push_image(tmp_path, registry, "svendowideit/testhook:latest", "basic",
                              creds=f"{USER}:{PASSWORD}")
    response = await post(edge, "dockerhub", "dockerhub/push.json")
    assert response.status == 202, await response.text()
    [artifact] = [e for e in await edge.stored() if e.type == ARTIFACT]
    assert artifact.json()["customData"]["digest"] == digest


@pytest.mark.parametrize("resolving_registry", ["htpasswd-without-credentials"], indirect=True)
async def test_private_registry_without_credentials_is_503(edge, resolving_registry, tmp_path):
    registry, _ = resolving_registry
    await push_image(tmp_path, registry, "svendowideit/testhook:latest", "basic", creds=f"{USER}:{PASSWORD}")
    response = await post(edge, "dockerhub", "dockerhub/push.json")
    assert response.status == 503
    assert "basic credentials" in (await response.json())["detail"]
    assert await edge.stored() == []


@pytest.mark.parametrize("resolving_registry", ["token"], indirect=True)
async def test_bearer_token_flow_against_a_token_auth_registry(edge, resolving_registry, tmp_path):
    registry, _ = resolving_registry
    digest = await push_image(tmp_path, registry, "svendowideit/testhook:latest", "bearer",
                              creds=f"{USER}:{PASSWORD}")
    registry.tokens.requests.clear()

    response = await post(edge, "dockerhub", "dockerhub/push.json")
    assert response.status == 202, await response.text()
    [artifact] = [e for e in await edge.stored() if e.type == ARTIFACT]
    assert artifact.json()["customData"]["digest"] == digest
    # The router followed the registry's challenge: its service, a pull scope, our credentials.
    assert registry.tokens.requests == [{"user": USER, "service": "trigger-router-test-registry",
                                         "scopes": ["repository:svendowideit/testhook:pull"]}]
