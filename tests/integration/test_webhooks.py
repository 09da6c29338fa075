"""GitHub and GitLab webhooks through the real HTTP edge into a real JetStream."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.conftest import SHARED
from tests.integration.conftest import GITHUB_OLD_SECRET, GITLAB_TOKEN, github_signature
from tests.support import cdevents_schema

GITHUB = SHARED / "fixtures" / "github"
GITLAB = SHARED / "fixtures" / "gitlab"
DIGEST = "sha256:3da1996a8115d7616457760d9920b815241d0a03b34cf5f04e9a0e9d8de37498"

# (fixture, expected CloudEvent type, expected CDEvents translation or None), written from the
# mapping table in README, not from the code.
GITHUB_CASES = [
    ("check_suite/completed.payload.json", "com.github.check_suite.completed", None),
    ("deployment/payload.json", "com.github.deployment.created", None),
    ("deployment_status/payload.json", "com.github.deployment_status.created", None),
    ("push/payload.json", "com.github.push", None),
    ("push/with-new-branch.payload.json", "com.github.push", None),
    ("registry_package/published.docker.payload.json", "com.github.registry_package.published",
     "dev.cdevents.artifact.published.0.3.0"),
    ("release/published.payload.json", "com.github.release.published", None),
    ("status/payload.json", "com.github.status", None),
    ("workflow_job/completed.success.with-organization.payload.json", "com.github.workflow_job.completed", None),
    ("workflow_run/completed.payload.json", "com.github.workflow_run.completed",
     "dev.cdevents.pipelinerun.finished.0.3.0"),
    ("workflow_run/requested.payload.json", "com.github.workflow_run.requested",
     "dev.cdevents.pipelinerun.queued.0.3.0"),
]
GITLAB_CASES = [
    ("deployment.json", "Deployment Hook", "com.gitlab.deployment", None),
    ("pipeline.json", "Pipeline Hook", "com.gitlab.pipeline", "dev.cdevents.pipelinerun.finished.0.3.0"),
    ("push.json", "Push Hook", "com.gitlab.push", None),
]


def test_every_github_fixture_is_covered():
    on_disk = {str(p.relative_to(GITHUB)) for p in GITHUB.rglob("*.json")} - {"ping/payload.json"}
    assert on_disk == {case[0] for case in GITHUB_CASES}


async def post_github(edge, fixture: str, delivery: str, *, secret: str | None = None, body: bytes | None = None):
    body = body if body is not None else (GITHUB / fixture).read_bytes()
    headers = {"Content-Type": "application/json", "X-GitHub-Event": fixture.split("/")[0],
               "X-GitHub-Delivery": delivery}
    if secret is not False:
        headers["X-Hub-Signature-256"] = github_signature(body, *([secret] if secret else []))
    return await edge.http.post(f"{edge.url}/webhooks/github", data=body, headers=headers)


@pytest.mark.parametrize("fixture,expected_type,cdevent_type", GITHUB_CASES)
async def test_github_fixture_yields_one_event(edge, fixture, expected_type, cdevent_type):
    delivery = str(uuid.uuid4())
    payload = json.loads((GITHUB / fixture).read_text())
    response = await post_github(edge, fixture, delivery)
    assert response.status == 202, await response.text()

    stored = await edge.stored()
    originals = [e for e in stored if not e.type.startswith("dev.cdevents.")]
    assert [(e.type, e.id, e.source) for e in originals] == [
        (expected_type, delivery, payload["repository"]["html_url"])]
    assert originals[0].json() == payload
    derived = [e for e in stored if e.type.startswith("dev.cdevents.")]
    assert [e.type for e in derived] == ([cdevent_type] if cdevent_type else [])
    for event in derived:
        cdevent = event.json()
        cdevents_schema.validate(cdevent)
        assert cdevent["context"]["links"][0]["target"]["contextId"] == delivery
        assert event.subject == cdevent["subject"]["id"]


async def test_container_publish_becomes_digest_purl(edge):
    await post_github(edge, "registry_package/published.docker.payload.json", "pkg-1")
    [artifact] = [e for e in await edge.stored() if e.type == "dev.cdevents.artifact.published.0.3.0"]
    assert artifact.subject == (f"pkg:oci/hello-world@{DIGEST}"
                                "?repository_url=ghcr.io/codertocat/hello-world")


async def test_workflow_run_outcome_and_chain(edge):
    await post_github(edge, "workflow_run/requested.payload.json", "run-q")
    await post_github(edge, "workflow_run/completed.payload.json", "run-f")
    queued, finished = [e.json() for e in await edge.stored() if e.type.startswith("dev.cdevents.")]
    run = json.loads((GITHUB / "workflow_run/completed.payload.json").read_text())["workflow_run"]
    assert finished["subject"]["content"]["outcome"] == {"success": "success", "failure": "failure"}[run["conclusion"]]
    assert queued["context"]["chainId"] == finished["context"]["chainId"]


async def test_ping_is_answered_and_not_published(edge):
    response = await post_github(edge, "ping/payload.json", "ping-1")
    assert response.status == 200
    assert await edge.stored() == []


async def test_rotated_secret_is_accepted(edge):
    response = await post_github(edge, "push/payload.json", "rot-1", secret=GITHUB_OLD_SECRET)
    assert response.status == 202


async def test_same_delivery_twice_is_one_event(edge):
    first = await post_github(edge, "push/payload.json", "twice")
    second = await post_github(edge, "push/payload.json", "twice")
    assert (first.status, second.status) == (202, 202)
    assert (await second.json())["accepted"][0]["duplicate"] is True
    assert [e.id for e in await edge.stored()] == ["twice"]


@pytest.mark.parametrize("secret,reason", [
    ("wrong-secret", "does not match"),
    (False, "missing X-Hub-Signature-256"),
])
async def test_bad_github_signature_is_401_and_nothing_published(edge, secret, reason):
    response = await post_github(edge, "push/payload.json", "bad-sig", secret=secret)
    assert response.status == 401
    body = await response.json()
    assert reason in body["detail"] and "it-is-a-secret" not in json.dumps(body)
    assert await edge.stored() == []


async def test_tampered_body_is_401(edge):
    body = (GITHUB / "push/payload.json").read_bytes()
    headers = {"X-GitHub-Event": "push", "X-GitHub-Delivery": "tamper", "Content-Type": "application/json",
               "X-Hub-Signature-256": github_signature(body)}
    response = await edge.http.post(f"{edge.url}/webhooks/github", data=body.replace(b"Codertocat", b"Mallory"),
                                    headers=headers)
    assert response.status == 401
    assert await edge.stored() == []


async def post_gitlab(edge, fixture: str, event_header: str, delivery: str, token: str | None = GITLAB_TOKEN):
    headers = {"Content-Type": "application/json", "X-Gitlab-Event": event_header,
               "X-Gitlab-Event-UUID": delivery}
    if token:
        headers["X-Gitlab-Token"] = token
    return await edge.http.post(f"{edge.url}/webhooks/gitlab", data=(GITLAB / fixture).read_bytes(), headers=headers)


@pytest.mark.parametrize("fixture,header,expected_type,cdevent_type", GITLAB_CASES)
async def test_gitlab_fixture_yields_one_event(edge, fixture, header, expected_type, cdevent_type):
    delivery = str(uuid.uuid4())
    payload = json.loads((GITLAB / fixture).read_text())
    response = await post_gitlab(edge, fixture, header, delivery)
    assert response.status == 202, await response.text()
    stored = await edge.stored()
    originals = [e for e in stored if not e.type.startswith("dev.cdevents.")]
    assert [(e.type, e.id, e.source) for e in originals] == [(expected_type, delivery, payload["project"]["web_url"])]
    derived = [e for e in stored if e.type.startswith("dev.cdevents.")]
    assert [e.type for e in derived] == ([cdevent_type] if cdevent_type else [])
    for event in derived:
        cdevents_schema.validate(event.json())


async def test_gitlab_pipeline_outcome(edge):
    await post_gitlab(edge, "pipeline.json", "Pipeline Hook", "pl-1")
    [finished] = [e.json() for e in await edge.stored() if e.type.startswith("dev.cdevents.")]
    status = json.loads((GITLAB / "pipeline.json").read_text())["object_attributes"]["status"]
    assert status == "success" and finished["subject"]["content"]["outcome"] == "success"


@pytest.mark.parametrize("token", ["wrong", None])
async def test_bad_gitlab_token_is_401(edge, token):
    response = await post_gitlab(edge, "push.json", "Push Hook", "gl-bad", token=token)
    assert response.status == 401
    assert "error" in await response.json()
    assert await edge.stored() == []


async def test_gitlab_idempotency_key_deduplicates(edge):
    headers = {"Content-Type": "application/json", "X-Gitlab-Token": GITLAB_TOKEN, "Idempotency-Key": "idem-1"}
    for event_uuid in ("first-attempt", "retry"):
        response = await edge.http.post(f"{edge.url}/webhooks/gitlab", data=(GITLAB / "push.json").read_bytes(),
                                        headers={**headers, "X-Gitlab-Event-UUID": event_uuid})
        assert response.status == 202
    assert [e.id for e in await edge.stored()] == ["idem-1"]


async def test_oversize_is_413_with_json_body(edge):
    body = json.dumps({"ref": "x", "padding": "x" * 70000}).encode()
    response = await post_github(edge, "push/payload.json", "big", body=body)
    assert response.status == 413
    assert "limit" in (await response.json())["detail"]
    assert await edge.stored() == []


async def test_malformed_json_is_400(edge):
    response = await post_github(edge, "push/payload.json", "broken", body=b'{"ref": ')
    assert response.status == 400
    assert "not valid JSON" in (await response.json())["detail"]


async def test_non_json_content_type_is_415(edge):
    body = b"payload=%7B%7D"
    response = await edge.http.post(f"{edge.url}/webhooks/github", data=body, headers={
        "Content-Type": "application/x-www-form-urlencoded", "X-GitHub-Event": "push",
        "X-GitHub-Delivery": "form", "X-Hub-Signature-256": github_signature(body)})
    assert response.status == 415
    assert "application/json" in (await response.json())["detail"]


async def test_unknown_source_is_404_json(edge):
    response = await edge.http.post(f"{edge.url}/webhooks/bitbucket", data=b"{}")
    assert response.status == 404
    assert "github" in (await response.json())["detail"]
