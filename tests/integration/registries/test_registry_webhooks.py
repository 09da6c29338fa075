"""Every registry's documented webhook payload through the real edge into a real JetStream.

Fixtures are the vendors' documented examples (``tests/fixtures/registry/README.md`` names the
pages). Docker Hub and Quay need a registry to resolve their tags: see ``test_digest_resolution``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from tests.conftest import SHARED
from tests.integration.conftest import github_signature
from tests.integration.registries.conftest import OLD_SECRET, SECRET
from tests.support import cdevents_schema

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "registry"
ARTIFACT = "dev.cdevents.artifact.published.0.3.0"
PATH_TOKEN_SOURCES = {"dockerhub", "quay", "gar"}
ENVELOPE = "application/vnd.docker.distribution.events.v1+json"

# (source, fixture, registry's event type, event id, artifact purl): expected values written from
# the fixtures and the README's tables, not from the code.
CASES = [
    ("harbor", "harbor/push_artifact.json", "io.goharbor.push", None,
     "pkg:oci/debian@sha256:8a9e9863dbb6e10edb5adfe917c00da84e1700fa76e7ed02476aa6e6fb8ee0d8"
     "?repository_url=hub.harbor.com/test-webhook/debian&tag=latest"),
    ("ecr", "ecr/image-push.json", "com.amazonaws.ecr.push", "13cde686-328b-6117-af20-0e5566167482",
     "pkg:oci/my-repository-name@sha256:7f5b2640fe6fb4f46592dfd3410c4a79dac4f89e4782432e0378abcd12340000"
     "?repository_url=123456789012.dkr.ecr.us-west-2.amazonaws.com/my-repository-name&tag=latest"),
    ("gar", "gar/pubsub-push.json", "com.google.artifactregistry.push", "2070443601311540",
     "pkg:oci/hello-world@sha256:6ec128e26cd5a3ba7b4f3d7c4fbb8f4ab4a5d0e0b2b0cd8bb1c8a8d9e8f7a6b5"
     "?repository_url=us-east1-docker.pkg.dev/my-project/my-repo/hello-world&tag=1.1"),
    ("acr", "acr/push.json", "com.azure.containerregistry.push", "cb8c3971-9adc-488b-bdd8-43cbb4974ff5",
     "pkg:oci/hello-world@sha256:80f0d5c8786bb9e621a45ece0db56d11cdc624ad20da9fe62e9d25490f331d7d"
     "?repository_url=myregistry.azurecr.io/hello-world&tag=v1"),
]


async def post(edge, source: str, body: bytes, *, secret: str | None = SECRET, content_type="application/json"):
    headers = {"Content-Type": content_type}
    url = f"{edge.url}/webhooks/{source}"
    if secret is not None and source in PATH_TOKEN_SOURCES:
        url += f"/{secret}"
    elif secret is not None:
        headers["Authorization"] = f"Bearer {secret}"
    return await edge.http.post(url, data=body, headers=headers)


@pytest.mark.parametrize("source,fixture,original_type,original_id,purl", CASES)
async def test_documented_push_becomes_artifact_published(edge, source, fixture, original_type, original_id, purl):
    response = await post(edge, source, (FIXTURES / fixture).read_bytes())
    assert response.status == 202, await response.text()

    original, artifact = await edge.stored()
    assert original.type == original_type
    if original_id:
        assert original.id == original_id
    assert (artifact.type, artifact.subject) == (ARTIFACT, purl)
    cdevent = artifact.json()
    cdevents_schema.validate(cdevent)
    assert cdevent["subject"]["id"] == purl
    assert cdevent["context"]["links"][0]["target"]["contextId"] == original.id
    assert cdevent["customData"]["registry"] == source


@pytest.mark.parametrize("source,fixture,original_type,original_id,purl", CASES)
async def test_redelivery_is_deduplicated(edge, source, fixture, original_type, original_id, purl):
    for _ in range(2):
        response = await post(edge, source, (FIXTURES / fixture).read_bytes(), secret=OLD_SECRET)
        assert response.status == 202
    assert len(await edge.stored()) == 2
    assert all(a["duplicate"] for a in (await response.json())["accepted"])


@pytest.mark.parametrize("source,fixture", [
    ("dockerhub", "dockerhub/push.json"), ("quay", "quay/push.json"), ("harbor", "harbor/push_artifact.json"),
    ("distribution", "distribution/mixed.json"), ("ecr", "ecr/image-push.json"), ("gar", "gar/pubsub-push.json"),
    ("acr", "acr/push.json"),
])
@pytest.mark.parametrize("secret", ["not-the-secret", None])
async def test_wrong_or_missing_secret_is_401_and_nothing_published(edge, source, fixture, secret):
    response = await post(edge, source, (FIXTURES / fixture).read_bytes(), secret=secret)
    assert response.status == 401
    assert SECRET not in await response.text()
    assert await edge.stored() == [] and await edge.stored("TR_DEADLETTER") == []


def _without(payload: dict, path: tuple) -> dict:
    broken = copy.deepcopy(payload)
    node = broken
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return broken


@pytest.mark.parametrize("source,fixture,path,field", [
    ("dockerhub", "dockerhub/push.json", ("push_data", "tag"), "push_data.tag"),
    ("quay", "quay/push.json", ("docker_url",), "docker_url"),
    ("harbor", "harbor/push_artifact.json", ("event_data", "resources", 0, "digest"), "event_data.resources[0].digest"),
    ("distribution", "distribution/mixed.json", ("events",), "events"),
    ("ecr", "ecr/image-push.json", ("detail", "image-digest"), "detail.image-digest"),
    ("gar", "gar/pubsub-push.json", ("message", "messageId"), "message.messageId"),
    ("acr", "acr/push.json", ("target", "digest"), "target.digest"),
])
async def test_missing_field_is_400_naming_it(edge, source, fixture, path, field):
    body = json.dumps(_without(json.loads((FIXTURES / fixture).read_text()), path)).encode()
    response = await post(edge, source, body)
    assert response.status == 400
    refusal = await response.json()
    assert refusal["field"] == field and field in refusal["detail"]
    assert await edge.stored() == []


async def test_distribution_batch_stores_pushes_skips_pulls_and_blobs_dead_letters_the_rest(edge):
    envelope = json.loads((FIXTURES / "distribution/mixed.json").read_text())
    response = await post(edge, "distribution", json.dumps(envelope).encode(), content_type=ENVELOPE)
    assert response.status == 202
    answer = await response.json()
    assert [r["field"] for r in answer["rejected"]] == ["events[3].target.digest"]

    stored = await edge.stored()
    assert [e.type for e in stored] == ["dev.cncf.distribution.push", ARTIFACT]
    assert stored[0].id == envelope["events"][0]["id"]
    assert stored[1].subject == ("pkg:oci/test@sha256:af06af3514c44a964d3b905b498cf6493db8f1cde7c10e078213a89c87308ba0"
                                 "?repository_url=registry.test:5000/root/test&tag=more-auth")
    [dead] = await edge.stored("TR_DEADLETTER")
    assert dead.type == "dev.triggerrouter.ingest.rejected"
    letter = dead.json()
    assert letter["item"] == envelope["events"][3] and "target.digest" in letter["reason"]

    again = await post(edge, "distribution", json.dumps(envelope).encode(), content_type=ENVELOPE)
    assert again.status == 202  # the registry's retry of the same envelope changes nothing
    assert len(await edge.stored()) == 2 and len(await edge.stored("TR_DEADLETTER")) == 1


async def test_untagged_manifest_is_stored_without_an_artifact(edge):
    envelope = json.loads((FIXTURES / "distribution/mixed.json").read_text())
    del envelope["events"][0]["target"]["tag"]  # a platform manifest of an index, pushed by digest
    response = await post(edge, "distribution", json.dumps({"events": envelope["events"][:1]}).encode(),
                          content_type=ENVELOPE)
    assert response.status == 202
    assert [e.type for e in await edge.stored()] == ["dev.cncf.distribution.push"]


@pytest.mark.parametrize("source,fixture,change", [
    ("harbor", "harbor/push_artifact.json", lambda p: p.update(type="PULL_ARTIFACT")),
    ("ecr", "ecr/image-push.json", lambda p: p["detail"].update({"action-type": "DELETE"})),
    ("ecr", "ecr/image-push.json", lambda p: p["detail"].update(result="FAILURE")),
    ("acr", "acr/push.json", lambda p: p.update(action="delete")),
])
async def test_non_push_events_are_accepted_and_not_published(edge, source, fixture, change):
    payload = json.loads((FIXTURES / fixture).read_text())
    change(payload)
    response = await post(edge, source, json.dumps(payload).encode())
    assert response.status == 200
    assert await edge.stored() == []


async def test_harbor_digest_as_tag_is_no_tag(edge):
    payload = json.loads((FIXTURES / "harbor/push_artifact.json").read_text())
    resource = payload["event_data"]["resources"][0]
    resource["tag"] = resource["digest"]  # what Harbor sends for a push by digest (replication)
    response = await post(edge, "harbor", json.dumps(payload).encode())
    assert response.status == 202
    assert [e.type for e in await edge.stored()] == ["io.goharbor.push"]


async def test_ghcr_through_github_has_the_same_artifact_shape(edge):
    body = (SHARED / "fixtures/github/registry_package/published.docker.payload.json").read_bytes()
    await edge.http.post(f"{edge.url}/webhooks/github", data=body, headers={
        "Content-Type": "application/json", "X-GitHub-Event": "registry_package", "X-GitHub-Delivery": "ghcr-1",
        "X-Hub-Signature-256": github_signature(body)})
    await post(edge, "acr", (FIXTURES / "acr/push.json").read_bytes())
    ghcr, acr = [e.json() for e in await edge.stored() if e.type == ARTIFACT]
    for cdevent in (ghcr, acr):
        cdevents_schema.validate(cdevent)
    assert ghcr["customData"].keys() == acr["customData"].keys()
    assert ghcr["subject"].keys() == acr["subject"].keys() and ghcr["subject"]["content"] == {}
    assert ghcr["customData"]["registry"] == "github"
    assert ghcr["customData"]["repository"] == "ghcr.io/codertocat/hello-world"


@pytest.mark.parametrize("fixture,event_type,critical,high", [
    ("harbor/scanning_completed.json", "io.goharbor.scanning_completed", 0, None),
    ("harbor/scanning_completed_critical.json", "io.goharbor.scanning_completed", 1, 2),
    ("harbor/scanning_failed.json", "io.goharbor.scanning_failed", None, None),
])
async def test_harbor_scan_webhooks_are_stored_with_digest_and_counts(edge, fixture, event_type, critical, high):
    """A scan result posted to the edge as Harbor sends it: stored once, with what a gate needs."""
    payload = json.loads((FIXTURES / fixture).read_text())
    digest = payload["event_data"]["resources"][0]["digest"]
    response = await post(edge, "harbor", json.dumps(payload).encode())
    assert response.status == 202, await response.text()
    (stored,) = await edge.stored()
    assert stored.type == event_type
    data = stored.json()
    assert digest in json.dumps(data)
    counts = json.dumps(data)
    if critical is not None:
        assert f'"critical": {critical}' in counts.lower(), counts
    if high is not None:
        assert f'"high": {high}' in counts.lower(), counts
    again = await post(edge, "harbor", json.dumps(payload).encode())
    assert [a["duplicate"] for a in (await again.json())["accepted"]] == [True]
    assert len(await edge.stored()) == 1  # a redelivery stores nothing new
