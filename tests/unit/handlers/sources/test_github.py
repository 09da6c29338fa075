"""GitHub webhooks through the source itself: signature checks, the documented payloads, refusals.

Expected types, subjects and times are read off the fixtures by hand (``X-GitHub-Event`` names the
event, ``action`` its stage); event ids are pinned in ``tests/unit/test_stable_ids.py``.
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from router import errors
from router.config import settings as config
from router.plugins import Delivery, catalog

FIXTURES = Path(__file__).resolve().parents[4].parent / "shared" / "fixtures" / "github"
DELIVERY = "72d3162e-cc78-11e3-81ab-4c9367dc0958"
SHA = "3484a3fb816e0859fd6e1cea078d76385ff50625"
GHCR_DIGEST = "sha256:3da1996a8115d7616457760d9920b815241d0a03b34cf5f04e9a0e9d8de37498"
DIGEST = "sha256:" + "ab" * 32
QUEUED = "dev.cdevents.pipelinerun.queued.0.3.0"
STARTED = "dev.cdevents.pipelinerun.started.0.3.0"
FINISHED = "dev.cdevents.pipelinerun.finished.0.3.0"
ARTIFACT = "dev.cdevents.artifact.published.0.3.0"
NOW = "<receive time>"  # an event whose trigger carries no usable time is stamped when it is made
RUN_URI = "https://github.com/octo-org/octo-repo/actions/runs/289782451"


def github(secrets: list[str] | None = None):
    env = {"TRIGGER_ROUTER_GITHUB__SECRETS": json.dumps(secrets)} if secrets is not None else {}
    return catalog.load().webhook_sources["github"](config.load(None, env=env))


async def normalize(event: str, body: bytes | dict, **headers: str) -> list:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": DELIVERY, **headers}
    result = github().normalize(Delivery({k: v for k, v in headers.items() if v}, raw, path_token=None))
    return await result if inspect.isawaitable(result) else result


def observed(event) -> tuple:
    time = event.attributes.get("time")
    if time and abs(datetime.fromisoformat(time.replace("Z", "+00:00")) - datetime.now(timezone.utc)) \
            < timedelta(seconds=30):
        time = NOW
    return event.type, event.subject, time


@pytest.mark.parametrize("fixture,event,source,expected", [
    ("push/payload.json", "push", "https://github.com/Codertocat/Hello-World",
     [("com.github.push", "refs/tags/simple-tag", None)]),
    ("push/with-new-branch.payload.json", "push", "https://github.com/Codertocat/Hello-World",
     [("com.github.push", "refs/heads/master", "2019-05-15T15:19:25Z")]),
    ("check_suite/completed.payload.json", "check_suite", "https://github.com/Codertocat/Hello-World",
     [("com.github.check_suite.completed", "ec26c3e57ca3a959ca5aad62de7213c562f8c821", "2019-05-15T15:21:14Z")]),
    ("deployment/payload.json", "deployment", "https://github.com/Codertocat/Hello-World",
     [("com.github.deployment.created", "production", "2019-05-15T15:20:53Z")]),
    ("deployment_status/payload.json", "deployment_status", "https://github.com/Codertocat/Hello-World",
     [("com.github.deployment_status.created", "production", "2019-05-15T15:20:55Z")]),
    ("release/published.payload.json", "release", "https://github.com/Codertocat/Hello-World",
     [("com.github.release.published", "0.0.1", "2019-05-15T15:20:53Z")]),
    ("status/payload.json", "status", "https://github.com/Codertocat/Hello-World",
     [("com.github.status", "6113728f27ae82c7b1a177c8d03f9e96e0adf246", "2019-05-15T15:20:55Z")]),
    ("workflow_job/completed.success.with-organization.payload.json", "workflow_job",
     "https://github.com/Codertocat/Hello-World",
     [("com.github.workflow_job.completed", SHA, "2021-08-05T10:38:16Z")]),
    ("workflow_run/requested.payload.json", "workflow_run", "https://github.com/octo-org/octo-repo",
     [("com.github.workflow_run.requested", SHA, "2020-10-05T16:33:24Z"),
      (QUEUED, "289782451", "2020-10-05T16:33:24Z")]),
    ("workflow_run/completed.payload.json", "workflow_run", "https://github.com/octo-org/octo-repo",
     [("com.github.workflow_run.completed", SHA, "2020-10-05T16:33:49Z"),
      (FINISHED, "289782451", "2020-10-05T16:33:49Z")]),
    # package_version.updated_at is GitHub's "0001-01-01" placeholder: no time, and the artifact
    # event is stamped when it is made (the package's own updated_at is not consulted).
    ("registry_package/published.docker.payload.json", "registry_package",
     "https://github.com/Codertocat/hello-world-npm",
     [("com.github.registry_package.published", GHCR_DIGEST, None),
      (ARTIFACT, f"pkg:oci/hello-world@{GHCR_DIGEST}?repository_url=ghcr.io/codertocat/hello-world", NOW)]),
    ("ping/payload.json", "ping", None, []),
])
async def test_fixture_events(fixture, event, source, expected):
    published = await normalize(event, (FIXTURES / fixture).read_bytes())
    assert [observed(e) for e in published] == expected
    assert [e.source for e in published] == [source] * len(expected)


async def test_completed_workflow_run_is_a_finished_pipelinerun():
    _, finished = await normalize("workflow_run", (FIXTURES / "workflow_run/completed.payload.json").read_bytes())
    subject = finished.json()["subject"]
    assert subject == {"id": "289782451", "source": "https://github.com/octo-org/octo-repo",
                       "content": {"pipelineName": "test", "uri": RUN_URI, "outcome": "success"}}
    assert finished.json()["context"]["links"][0]["target"] == {"contextId": DELIVERY}


async def test_ghcr_publish_is_an_artifact_with_its_digest():
    body = (FIXTURES / "registry_package/published.docker.payload.json").read_bytes()
    _, artifact = await normalize("registry_package", body)
    assert artifact.json()["customData"] == {
        "registry": "github", "repository": "ghcr.io/codertocat/hello-world", "digest": GHCR_DIGEST,
        "tag": None, "mediaType": "application/vnd.docker.distribution.manifest.v2+json", "index": False}


def workflow_run(action: str, conclusion: str | None = None) -> dict:
    return {"action": action, "repository": {"html_url": "https://github.com/acme/web"},
            "workflow_run": {"id": 7, "name": "build", "head_sha": "abc", "conclusion": conclusion,
                             "html_url": "https://github.com/acme/web/actions/runs/7"}}


@pytest.mark.parametrize("action,conclusion,cdevent_type,outcome", [
    ("requested", None, QUEUED, {}),
    ("in_progress", None, STARTED, {}),
    ("completed", "success", FINISHED, {"outcome": "success"}),
    ("completed", "neutral", FINISHED, {"outcome": "success"}),
    ("completed", "failure", FINISHED, {"outcome": "failure", "errors": "workflow run concluded failure"}),
    ("completed", "timed_out", FINISHED, {"outcome": "failure", "errors": "workflow run concluded timed_out"}),
    ("completed", "cancelled", FINISHED, {"outcome": "cancel", "errors": "workflow run concluded cancelled"}),
    ("completed", "skipped", FINISHED, {"outcome": "cancel", "errors": "workflow run concluded skipped"}),
    ("completed", "action_required", FINISHED,
     {"outcome": "error", "errors": "workflow run concluded action_required"}),
    ("completed", None, FINISHED, {"outcome": "error", "errors": "workflow run concluded unknown"}),
    ("waiting", None, None, None),
])
async def test_workflow_run_stages(action, conclusion, cdevent_type, outcome):
    published = await normalize("workflow_run", workflow_run(action, conclusion))
    assert published[0].type == f"com.github.workflow_run.{action}"
    if cdevent_type is None:
        assert len(published) == 1
        return
    assert published[1].type == cdevent_type
    assert published[1].json()["subject"]["content"] == {
        "pipelineName": "build", "uri": "https://github.com/acme/web/actions/runs/7", **outcome}


def package(version: str, *, kind: str = "container", url: str | None = "ghcr.io/acme/app:v1",
            manifest_digest: str | None = None) -> dict:
    metadata = {"tag": {"name": "v1"}, "manifest": {"digest": manifest_digest,
                                                    "media_type": "application/vnd.oci.image.index.v1+json"}}
    return {"name": "app", "package_type": kind, "owner": {"login": "acme"},
            "package_version": {"version": version, "container_metadata": metadata, "package_url": url}}


@pytest.mark.parametrize("event,action,pkg,purl", [
    ("package", "published", package(DIGEST), f"pkg:oci/app@{DIGEST}?repository_url=ghcr.io/acme/app&tag=v1"),
    ("package", "published", package(DIGEST, url=None),
     f"pkg:oci/app@{DIGEST}?repository_url=ghcr.io/acme/app&tag=v1"),
    ("registry_package", "published", package("v1", kind="CONTAINER", manifest_digest=DIGEST),
     f"pkg:oci/app@{DIGEST}?repository_url=ghcr.io/acme/app&tag=v1"),
    ("package", "published", package(DIGEST, kind="npm"), None),
    ("package", "updated", package(DIGEST), None),
    ("package", "published", package("latest"), None),  # no sha256 digest anywhere: no artifact
])
async def test_container_packages(event, action, pkg, purl):
    body = {"action": action, "repository": {"html_url": "https://github.com/acme/app"}, event: pkg}
    published = await normalize(event, body)
    assert published[0].type == f"com.github.{event}.{action}"
    assert [e.subject for e in published[1:]] == ([purl] if purl else [])
    if purl:
        assert published[1].json()["customData"]["index"] is True


@pytest.mark.parametrize("body,source", [
    ({"organization": {"html_url": "https://github.com/acme"}, "sender": {"html_url": "https://github.com/bot"}},
     "https://github.com/acme"),
    ({"sender": {"html_url": "https://github.com/bot"}}, "https://github.com/bot"),
    ({}, "https://github.com"),
])
async def test_source_falls_back_to_organization_sender_github(body, source):
    [event] = await normalize("star", {"action": "created", **body})
    assert (event.type, event.source) == ("com.github.star.created", source)


@pytest.mark.parametrize("event,body,expected", [
    ("push", {"action": 5, "ref": 7}, ("com.github.push", "7", None)),  # odd types: not refused
    ("push", {"ref": "", "head_commit": {"timestamp": 1557933565}}, ("com.github.push", None, None)),
    ("issues", {"action": "opened"}, ("com.github.issues.opened", None, None)),
    ("deployment_status", {"deployment_status": {"environment": "qa", "created_at": "2024-05-01T10:00:00Z",
                                                 "updated_at": "2024-05-01T10:05:00Z"}},
     ("com.github.deployment_status", "qa", "2024-05-01T10:05:00Z")),
    ("workflow_job", {"workflow_job": {"head_sha": "abc", "completed_at": None, "started_at": "2024-05-01T10:00:00Z"}},
     ("com.github.workflow_job", "abc", "2024-05-01T10:00:00Z")),
])
async def test_subject_and_time_fallbacks(event, body, expected):
    [published] = await normalize(event, body)
    assert observed(published) == expected


@pytest.mark.parametrize("event,headers,body,field", [
    (None, {}, b"{}", "X-GitHub-Event"),
    ("push", {"X-GitHub-Delivery": ""}, b"{}", "X-GitHub-Delivery"),
    ("push", {}, b"", None),
    ("push", {}, b"{not json", None),
    ("push", {}, b"[]", None),
    ("push", {}, b'"refs/heads/main"', None),
    ("ping", {}, b"[1]", None),  # a ping is still read
    ("push", {}, b'{"repository": {"html_url": 5}}', "source"),
])
async def test_refusals_name_the_field(event, headers, body, field):
    with pytest.raises(errors.BadRequest) as caught:
        await normalize(event, body, **headers)
    assert caught.value.field == field


def signed(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


BODY = b'{"zen": "Keep it logically awesome."}'


@pytest.mark.parametrize("secrets,signature,accepted", [
    (["s3cret"], signed(BODY, "s3cret"), True),
    (["old", "new"], signed(BODY, "old"), True),  # rotation: any configured secret
    (["s3cret"], signed(BODY, "s3cret").upper().replace("SHA256=", "sha256="), True),
    (["s3cret"], signed(BODY, "other"), False),
    (["s3cret"], signed(BODY + b" ", "s3cret"), False),  # signed a different body
    (["s3cret"], None, False),
    (["s3cret"], "", False),
    (["s3cret"], signed(BODY, "s3cret").replace("sha256=", "sha1="), False),
    (["s3cret"], "sha256=", False),
    ([], signed(BODY, "s3cret"), False),  # nothing configured: nothing is accepted
    (None, signed(BODY, ""), False),
])
def test_signature(secrets, signature, accepted):
    headers = {"X-Hub-Signature-256": signature} if signature is not None else {}
    delivery = Delivery(headers, BODY, path_token=None)
    if accepted:
        assert github(secrets).authenticate(delivery) is None
    else:
        with pytest.raises(errors.Unauthorized):
            github(secrets).authenticate(delivery)


@pytest.mark.parametrize("headers,expected", [({"X-GitHub-Delivery": DELIVERY}, DELIVERY), ({}, "")])
def test_delivery_id_is_the_delivery_header(headers, expected):
    assert github().delivery_id(Delivery(headers, b"{}")) == expected
