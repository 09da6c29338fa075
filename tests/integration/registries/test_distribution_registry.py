"""A real distribution registry notifying the real edge: push, re-push, pull, with skopeo.

The registry delivers notifications asynchronously from an in-memory queue, so every wait is a
bounded poll of what JetStream stored.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.integration.registries.conftest import SECRET
from tests.support import cdevents_schema, ociimage
from tests.support.registryserver import RegistryServer

ARTIFACT = "dev.cdevents.artifact.published.0.3.0"
PUSH = "dev.cncf.distribution.push"


@pytest.fixture
def notifying_registry(edge, tmp_path):
    server = RegistryServer(tmp_path / "registry", notify_url=f"{edge.url}/webhooks/distribution",
                            notify_authorization=f"Bearer {SECRET}").start()
    yield server
    server.stop()


async def stored_when(edge, done, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        stored = await edge.stored()
        if done(stored):
            return stored
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; stored: {[(e.type, e.subject) for e in stored]}")
        await asyncio.sleep(0.2)


def artifacts(stored):
    return [e for e in stored if e.type == ARTIFACT]


async def push(tmp_path, name: str, registry: RegistryServer, reference: str, content: str) -> str:
    tag = reference.rsplit(":", 1)[1]
    return await asyncio.to_thread(ociimage.push, _layout(tmp_path / name, tag, content), tag,
                                   f"{registry.host}/{reference}")


def _layout(root, tag, content):
    ociimage.layout(root, tag, content)
    return root


async def test_push_publishes_the_manifest_digest_skopeo_reports(edge, notifying_registry, tmp_path):
    digest = await push(tmp_path, "v1", notifying_registry, "team/app:v1", "first")

    stored = await stored_when(edge, lambda s: artifacts(s))
    [artifact] = artifacts(stored)
    assert artifact.subject == f"pkg:oci/app@{digest}?repository_url={notifying_registry.host}/team/app&tag=v1"
    cdevent = artifact.json()
    cdevents_schema.validate(cdevent)
    assert cdevent["customData"]["digest"] == digest
    assert cdevent["customData"]["mediaType"] == ociimage.MANIFEST
    [original] = [e for e in stored if e.type == PUSH]
    assert cdevent["context"]["links"][0]["target"]["contextId"] == original.id
    assert original.json()["target"]["digest"] == digest  # the registry's own event, verbatim
    # Blobs (layer, config) were pushed too, and are not artifacts.
    assert [e.type for e in stored].count(PUSH) == 1


async def test_new_content_under_the_same_tag_is_a_new_event(edge, notifying_registry, tmp_path):
    first = await push(tmp_path, "a", notifying_registry, "team/app:latest", "one")
    await stored_when(edge, lambda s: len(artifacts(s)) == 1)
    second = await push(tmp_path, "b", notifying_registry, "team/app:latest", "two")

    stored = await stored_when(edge, lambda s: len(artifacts(s)) == 2)
    assert first != second
    assert [a.json()["customData"]["digest"] for a in artifacts(stored)] == [first, second]
    assert len({a.id for a in artifacts(stored)}) == 2


async def test_pulls_publish_nothing(edge, notifying_registry, tmp_path):
    await push(tmp_path, "a", notifying_registry, "team/app:v1", "one")
    await stored_when(edge, lambda s: len(artifacts(s)) == 1)
    before = len(await edge.stored())

    reference = f"docker://{notifying_registry.host}/team/app:v1"
    await asyncio.to_thread(ociimage.skopeo, "inspect", "--tls-verify=false", reference)
    await asyncio.to_thread(ociimage.skopeo, "copy", "--quiet", "--src-tls-verify=false", reference,
                            f"dir:{tmp_path / 'pulled'}")
    # Notifications go out in order per endpoint: once a later push is stored, the pull events
    # before it have been delivered (and ignored).
    marker = await push(tmp_path, "marker", notifying_registry, "team/marker:v1", "marker")
    stored = await stored_when(edge, lambda s: len(artifacts(s)) == 2)
    assert len(stored) == before + 2
    assert artifacts(stored)[-1].json()["customData"]["digest"] == marker
